//! The protocol as runtimes exercise it, through the real binaries: VERSION,
//! the about text, and every bad input of the spec getting its error JSON.

use conformance::{run_plugin, PLUGINS};

const ADD_ENV: [(&str, &str); 4] = [
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "ctr1"),
    ("CNI_NETNS", "/run/netns/does-not-matter"),
    ("CNI_IFNAME", "eth0"),
];
const CONF: &str = r#"{"cniVersion":"1.0.0","name":"proto","type":"loopback"}"#;

#[test]
fn version_of_every_plugin_lists_all_seven() {
    for p in PLUGINS {
        // Podman sends VERSION with placeholder values in every variable.
        let env = [
            ("CNI_COMMAND", "VERSION"),
            ("CNI_CONTAINERID", "dummy"),
            ("CNI_NETNS", "dummy"),
            ("CNI_IFNAME", "dummy"),
            ("CNI_PATH", "dummy"),
        ];
        let r = run_plugin(None, p, &env, r#"{"cniVersion":"1.0.0"}"#).ok();
        assert!(r.stdout.ends_with('\n'), "{p}: {r:?}");
        let v = r.json();
        let versions: Vec<&str> =
            v["supportedVersions"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        assert_eq!(versions, ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"], "{p}");
        assert!(r.stderr.is_empty());
    }
}

#[test]
fn no_command_prints_about_and_exits_zero() {
    for p in PLUGINS {
        let r = run_plugin(None, p, &[], "").ok();
        assert!(r.stdout.is_empty());
        assert!(r.stderr.starts_with(&format!("CNI {p} plugin version")), "{r:?}");
        assert!(r.stderr.contains("0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"));
    }
}

#[test]
fn unknown_command_is_code_4() {
    let v = run_plugin(None, "loopback", &[("CNI_COMMAND", "FOO")], CONF).err(4);
    assert_eq!(v["msg"], "unknown CNI_COMMAND: FOO");
}

#[test]
fn missing_env_names_each_variable() {
    for (drop, name) in [(1, "CNI_CONTAINERID"), (2, "CNI_NETNS"), (3, "CNI_IFNAME")] {
        let env: Vec<(&str, &str)> =
            ADD_ENV.iter().enumerate().filter(|(i, _)| *i != drop).map(|(_, kv)| *kv).collect();
        let v = run_plugin(None, "loopback", &env, CONF).err(4);
        assert_eq!(v["msg"], format!("required env variables [{name}] missing"));
    }
}

#[test]
fn bad_interface_names_are_code_4() {
    for bad in ["0123456789abcdef", "a/b", "a:b", "a b", ".", ".."] {
        let mut env = ADD_ENV.to_vec();
        env[3] = ("CNI_IFNAME", bad);
        let v = run_plugin(None, "loopback", &env, CONF).err(4);
        assert!(v["msg"].as_str().unwrap().contains("interface name"), "{bad}: {v}");
    }
}

#[test]
fn container_id_with_path_characters_is_code_4() {
    for bad in ["../etc", "a/b", "-x", "a b"] {
        let mut env = ADD_ENV.to_vec();
        env[1] = ("CNI_CONTAINERID", bad);
        let v = run_plugin(None, "loopback", &env, CONF).err(4);
        assert_eq!(v["msg"], "invalid characters in containerID");
        assert_eq!(v["details"], bad);
    }
}

#[test]
fn bad_stdin_gets_the_right_code_and_names_the_field() {
    let cases: &[(&str, u64, &str)] = &[
        ("not json", 6, "error unmarshall network config"),
        (r#"{"cniVersion":"1.0.0","type":"loopback"}"#, 7, "missing network name"),
        (r#"{"cniVersion":"1.0.0","name":"n"}"#, 7, "type"),
        (r#"{"cniVersion":"1.0.0","name":"../n","type":"loopback"}"#, 7, "name"),
        (r#"{"cniVersion":"1.0.0","name":"n","type":"../loopback"}"#, 7, "type"),
        (r#"{"cniVersion":"1.0.0","name":"n","type":"loopback","ipam":{"type":"a/b"}}"#, 7, "ipam.type"),
        (r#"{"cniVersion":"9.9.9","name":"n","type":"loopback"}"#, 1, "incompatible CNI versions"),
    ];
    for (stdin, code, needle) in cases {
        let v = run_plugin(None, "loopback", &ADD_ENV, stdin).err(*code);
        assert!(v["msg"].as_str().unwrap().contains(needle), "{stdin}: {v}");
    }
    let big = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"loopback","x":"{}"}}"#, "a".repeat(1 << 20));
    let v = run_plugin(None, "loopback", &ADD_ENV, &big).err(6);
    assert!(v["msg"].as_str().unwrap().contains("too large"));
}

#[test]
fn unsupported_version_lists_ours() {
    let v = run_plugin(None, "loopback", &ADD_ENV, r#"{"cniVersion":"9.9.9","name":"n","type":"loopback"}"#).err(1);
    assert!(v["details"]
        .as_str()
        .unwrap()
        .contains(r#"plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#));
    assert_eq!(v["cniVersion"], "1.1.0");
}

#[test]
fn errors_go_to_stdout_and_exit_nonzero() {
    let r = run_plugin(None, "loopback", &[("CNI_COMMAND", "ADD")], CONF);
    assert_eq!(r.code, 1);
    assert!(r.stderr.is_empty(), "{r:?}");
    assert!(r.stdout.starts_with("{\n    \""), "4-space pretty JSON: {r:?}");
}

#[test]
fn cni_args_unknown_keys_need_ignore_unknown() {
    let mut env = ADD_ENV.to_vec();
    env.push(("CNI_ARGS", "FOO=bar"));
    env[2] = ("CNI_NETNS", "/run/netns/nonexistent-proto-test");
    let v = run_plugin(None, "loopback", &env, CONF).err(4);
    assert!(v["msg"].as_str().unwrap().contains("unknown args"), "{v}");
    env.pop();
    env.push(("CNI_ARGS", "FOO"));
    let v = run_plugin(None, "loopback", &env, CONF).err(4);
    assert!(v["msg"].as_str().unwrap().contains("invalid pair"), "{v}");
}

#[test]
fn check_needs_040_and_gc_needs_110() {
    let mut env = ADD_ENV.to_vec();
    env[0] = ("CNI_COMMAND", "CHECK");
    let v = run_plugin(None, "loopback", &env, r#"{"cniVersion":"0.3.1","name":"n","type":"loopback"}"#).err(1);
    assert_eq!(v["msg"], "config version does not allow CHECK");
    let v = run_plugin(None, "loopback", &[("CNI_COMMAND", "GC")], CONF).err(1);
    assert_eq!(v["msg"], "config version does not allow GC");
}

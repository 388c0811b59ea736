//! libnftnl calls libmnl. A shared libnftnl brings libmnl itself (its
//! DT_NEEDED); the static release build (`make release`) links libnftnl.a,
//! which does not, so libmnl.a must be named here when `LIBMNL_LIB_DIR`
//! points at it (the Makefile builds it from packaging/libmnl).

fn main() {
    println!("cargo:rerun-if-env-changed=LIBMNL_LIB_DIR");
    if let Some(dir) = std::env::var_os("LIBMNL_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", std::path::Path::new(&dir).display());
        println!("cargo:rustc-link-lib=static=mnl");
    }
}

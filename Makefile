# The two commands a fresh Debian machine needs: `make demo` and `make test`.
# Both install the system packages they miss, then build.

PREFIX  ?= /opt/cni/bin
DESTDIR ?=
CARGO   ?= cargo
PLUGINS := loopback host-local bridge portmap macvlan vxlan firewall tuning static ptp host-device dhcp bandwidth dnsname
TOOLS   := cnitool

# Build and run-time packages: libnftnl/libmnl for nftables over netlink,
# iproute2/nftables/iptables as test witnesses (iptables also for the
# firewall plugin's FORWARD DROP tests), iputils-ping for traffic proofs,
# g++ for libFuzzer (compiled by libfuzzer-sys for `make fuzz`),
# protoc for the CRI client the conformance tests build (k8s-cri),
# dnsmasq-base for the DHCP server the dhcp tests start in a namespace.
DEB_PACKAGES := pkg-config libnftnl-dev libmnl-dev iproute2 nftables iptables iputils-ping procps g++ protobuf-compiler dnsmasq-base

# The node the Kubernetes test runs (conformance/tests/containerd_cri.rs):
# containerd 1.6 with its CRI plugin, runc, and busybox-static, from which
# the test builds its pause image (no registry is reachable).
# podman: the dnsname test runs real Podman (CNI backend) on our plugins.
CRI_PACKAGES := containerd runc busybox-static podman

# The overlay's control plane tests (conformance/tests/vxlan_etcd.rs):
# etcd 3.4 and etcdctl, started by the tests in namespaces they make;
# openssl makes the TLS test's CA and certificates at run time.
ETCD_PACKAGES := etcd-server etcd-client openssl

.PHONY: all deps cri-deps etcd-deps build release install test unit conformance demo bench bench-deps chaos fuzz lint fmt clean

all: build

# Installs those of the Debian packages $(1) that are missing.
define install-missing
	@missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call install-missing,$(DEB_PACKAGES))

cri-deps:
	$(call install-missing,$(CRI_PACKAGES))

etcd-deps:
	$(call install-missing,$(ETCD_PACKAGES))

build: deps
	$(CARGO) build --workspace --bins

release: deps
	$(CARGO) build --release --workspace --bins

install: release
	install -d $(DESTDIR)$(PREFIX)
	for b in $(PLUGINS) $(TOOLS); do install -m 0755 target/release/$$b $(DESTDIR)$(PREFIX)/$$b; done

# Unit tests need no privileges; conformance tests need root (namespaces).
# The reference plugins are installed too: compatibility tests run them;
# and containerd, for the test of the kubelet's path.
test: build bench-deps cri-deps etcd-deps
	$(CARGO) test --workspace

demo: release etcd-deps
	CNI_TEST_BIN_DIR=$(CURDIR)/target/release ./target/release/demo $(if $(SCENE),--scene $(SCENE),)

# The reference plugins the bench compares against (binaries in /usr/lib/cni).
REF_PACKAGE := containernetworking-plugins
# dnsname's bench: dnsperf drives our name server and dnsmasq side by side.
DNS_BENCH_PACKAGES := dnsperf dnsmasq-base

bench-deps: deps
	@dpkg -s $(REF_PACKAGE) >/dev/null 2>&1 || { \
	  echo "installing: $(REF_PACKAGE)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $(REF_PACKAGE) >/dev/null; }
	$(call install-missing,$(DNS_BENCH_PACKAGES))

# Ours against the reference, side by side: `make bench [N=1000] [QUICK=1]
# [ONLY=bridge,portmap]`. Table on stdout; bench.json, bench.svg and
# bench.md in bench-out/. Fails when an operation fails or state is left.
# `make bench PROFILE=1 [ONLY=..]`: only the per-phase profile of one ADD
# and one DEL of each scenario with our plugins (seconds).
bench: bench-deps etcd-deps release
	./target/release/bench $(if $(PROFILE),--profile,) $(if $(QUICK),--quick,) $(if $(N),--n $(N),) $(if $(ONLY),--only $(ONLY),)
	$(if $(PROFILE),,./target/release/bench-dns $(if $(QUICK),--n 100 --secs 2,) $(if $(N),--n $(N),))
	$(if $(PROFILE)$(ONLY),,./target/release/bench_etcd $(if $(QUICK),2,5))

# Random ADD/CHECK/DEL/GC over bridge+host-local+portmap and macvlan, several
# at once, with SIGKILLs into plugins; every invariant checked after every
# step (`make test` runs 100 steps). `make chaos [STEPS=1000] [SEED=n]`; the
# seed is printed, and SEED=<it> replays the same schedule.
STEPS ?= 1000
chaos: build
	./target/debug/chaos --steps $(STEPS) $(if $(SEED),--seed $(SEED),)

# libFuzzer targets built on the stable toolchain (fuzz/run.sh), each run for
# FUZZ_SECONDS (default 300), seeded from fuzz/seeds and cni-conf/.
# `make fuzz [FUZZ_SECONDS=60] [TARGETS="conf result"]`.
FUZZ_SECONDS ?= 300
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) CARGO=$(CARGO) ./fuzz/run.sh $(TARGETS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

# dhcp IPAM ADD/DEL, ours beside the reference daemon in the same run,
# against dnsmasq in a namespace: `make bench-dhcp [N=20] [NOPING=1]`.
bench-dhcp: bench-deps release
	./target/release/bench-dhcp $(if $(N),--n $(N),) $(if $(NOPING),--no-ping,)

# The two commands a fresh Debian machine needs: `make demo` and `make test`.
# Both install the system packages they miss, then build.

PREFIX  ?= /opt/cni/bin
DESTDIR ?=
CARGO   ?= cargo
PLUGINS := loopback host-local bridge portmap macvlan vxlan firewall tuning static ptp host-device dhcp bandwidth dnsname
TOOLS   := cnitool cni-install

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

# The .deb test (conformance/tests/deb.rs) runs Podman with the package's
# plugins (its image is built from busybox-static; runc from CRI_PACKAGES).
PKG_TEST_PACKAGES := podman

.PHONY: all deps cri-deps etcd-deps pkg-test-deps build release dist deb install test unit conformance demo bench bench-deps chaos fuzz lint fmt clean

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

pkg-test-deps: bench-deps cri-deps
	$(call install-missing,$(PKG_TEST_PACKAGES))

build: deps
	$(CARGO) build --workspace --bins

# Release binaries are self-contained: statically linked (glibc crt-static,
# libnftnl.a, and packaging/libmnl/mnl.c, our own libmnl, since Debian ships
# no libmnl.a), so a node needs none of libnftnl, libmnl, libgcc_s. The
# explicit --target keeps crt-static off build scripts and proc-macros, and
# puts them in target/$(STATIC_TARGET)/release, apart from target/debug.
# Every binary names the version and the git commit it was built from.
STATIC_TARGET := x86_64-unknown-linux-gnu
RELEASE_PROFILE ?= release
STATIC_DIR    := target/$(STATIC_TARGET)/$(RELEASE_PROFILE)
STATIC_LIBS   := target/static-libs
NFTNL_A       := /usr/lib/x86_64-linux-gnu/libnftnl.a
VERSION       := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
GIT_COMMIT    := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
STATIC_CARGO  := CNIRS_GIT_COMMIT=$(GIT_COMMIT) \
	LIBMNL_LIB_DIR=$(CURDIR)/$(STATIC_LIBS) LIBNFTNL_LIB_DIR=$(CURDIR)/$(STATIC_LIBS) \
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
	$(CARGO) build --profile $(RELEASE_PROFILE) --target $(STATIC_TARGET)

$(STATIC_LIBS)/libmnl.a: packaging/libmnl/mnl.c
	@mkdir -p $(STATIC_LIBS)
	$(CC) -O2 -fPIE -Wall -Wextra -Werror -c $< -o $(STATIC_LIBS)/mnl.o
	rm -f $@ && ar rcs $@ $(STATIC_LIBS)/mnl.o
	ln -sf $(NFTNL_A) $(STATIC_LIBS)/libnftnl.a

release: deps $(STATIC_LIBS)/libmnl.a
	$(STATIC_CARGO) $(addprefix --bin ,$(PLUGINS) $(TOOLS))

# The release tarball, laid out as upstream's (every binary at the top
# level, so existing install scripts work), with LICENSE, INSTALL and
# .sha256/.sha512 files: $(DIST_DIR)/cni-rs-linux-amd64-v$(VERSION).tgz.
DIST_DIR  ?= dist
DIST_NAME := cni-rs-linux-amd64-v$(VERSION)
DIST_TGZ  := $(DIST_DIR)/$(DIST_NAME).tgz
LICENSE_TEXT := /usr/share/common-licenses/Apache-2.0
fill = sed -e 's/@VERSION@/$(VERSION)/g' -e 's/@COMMIT@/$(GIT_COMMIT)/g' -e 's/@PLUGINS@/$(PLUGINS)/g'

dist: release
	rm -rf $(DIST_DIR)/stage && mkdir -p $(DIST_DIR)/stage
	for b in $(PLUGINS) $(TOOLS); do install -m 0755 $(STATIC_DIR)/$$b $(DIST_DIR)/stage/$$b; done
	install -m 0644 $(LICENSE_TEXT) $(DIST_DIR)/stage/LICENSE
	$(fill) packaging/INSTALL > $(DIST_DIR)/stage/INSTALL && chmod 0644 $(DIST_DIR)/stage/INSTALL
	tar --sort=name --owner=0 --group=0 --numeric-owner -C $(DIST_DIR)/stage -czf $(DIST_TGZ) .
	cd $(DIST_DIR) && sha256sum $(DIST_NAME).tgz > $(DIST_NAME).tgz.sha256 && sha512sum $(DIST_NAME).tgz > $(DIST_NAME).tgz.sha512
	rm -rf $(DIST_DIR)/stage
	@ls -l $(DIST_TGZ)

# The Debian package (dpkg-deb, nothing downloaded): plugins in /usr/lib/cni,
# tools in /usr/bin, README, INSTALL and cni-conf/ under /usr/share/doc;
# replaces and conflicts with containernetworking-plugins; /opt/cni/bin
# links made by postinst only when that directory holds no other plugins.
DEB := $(DIST_DIR)/cni-rs_$(VERSION)_amd64.deb
DOC := usr/share/doc/cni-rs

deb: release
	rm -rf $(DIST_DIR)/deb && mkdir -p $(DIST_DIR)/deb/DEBIAN $(DIST_DIR)/deb/usr/lib/cni $(DIST_DIR)/deb/usr/bin $(DIST_DIR)/deb/$(DOC)/examples
	for p in $(PLUGINS); do install -m 0755 $(STATIC_DIR)/$$p $(DIST_DIR)/deb/usr/lib/cni/$$p; done
	for t in $(TOOLS); do install -m 0755 $(STATIC_DIR)/$$t $(DIST_DIR)/deb/usr/bin/$$t; done
	cp -r cni-conf/. $(DIST_DIR)/deb/$(DOC)/examples/
	cp README.md packaging/deb/copyright $(DIST_DIR)/deb/$(DOC)/
	$(fill) packaging/INSTALL > $(DIST_DIR)/deb/$(DOC)/INSTALL
	for s in postinst prerm; do $(fill) packaging/deb/$$s.in > $(DIST_DIR)/deb/DEBIAN/$$s; done
	$(fill) -e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DIST_DIR)/deb | cut -f1)/" packaging/deb/control.in > $(DIST_DIR)/deb/DEBIAN/control
	chmod -R u=rwX,go=rX $(DIST_DIR)/deb && chmod 0755 $(DIST_DIR)/deb/DEBIAN/postinst $(DIST_DIR)/deb/DEBIAN/prerm
	dpkg-deb --root-owner-group -Zxz --build $(DIST_DIR)/deb $(DEB)
	rm -rf $(DIST_DIR)/deb
	@ls -l $(DEB)

install: release
	install -d $(DESTDIR)$(PREFIX)
	for b in $(PLUGINS) $(TOOLS); do install -m 0755 $(STATIC_DIR)/$$b $(DESTDIR)$(PREFIX)/$$b; done

# Unit tests need no privileges; conformance tests need root (namespaces).
# The reference plugins are installed too: compatibility tests run them;
# and containerd, for the test of the kubelet's path.
test: build bench-deps cri-deps etcd-deps pkg-test-deps
	$(MAKE) dist deb RELEASE_PROFILE=pkgtest DIST_DIR=target/pkgtest-dist
	CNIRS_DIST_DIR=$(CURDIR)/target/pkgtest-dist $(CARGO) test --workspace

demo: release etcd-deps
	$(STATIC_CARGO) --bin demo
	CNI_TEST_BIN_DIR=$(CURDIR)/$(STATIC_DIR) ./$(STATIC_DIR)/demo $(if $(SCENE),--scene $(SCENE),)

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
	$(STATIC_CARGO) --bin bench --bin bench-dns --bin bench_etcd
	./$(STATIC_DIR)/bench $(if $(PROFILE),--profile,) $(if $(QUICK),--quick,) $(if $(N),--n $(N),) $(if $(ONLY),--only $(ONLY),)
	$(if $(PROFILE),,./$(STATIC_DIR)/bench-dns $(if $(QUICK),--n 100 --secs 2,) $(if $(N),--n $(N),))
	$(if $(PROFILE)$(ONLY),,./$(STATIC_DIR)/bench_etcd $(if $(QUICK),2,5))

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

# tools/import-circles.py (Python >= 3.11): no two modules of a crate
# import each other, no crate depends on a plugin.
LINT_PACKAGES := python3

lint:
	$(call install-missing,$(LINT_PACKAGES))
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 tools/import-circles.py

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

# dhcp IPAM ADD/DEL, ours beside the reference daemon in the same run,
# against dnsmasq in a namespace: `make bench-dhcp [N=20] [NOPING=1]`.
bench-dhcp: bench-deps release
	./target/release/bench-dhcp $(if $(N),--n $(N),) $(if $(NOPING),--no-ping,)

#!/usr/bin/env bash
# The package test (`make package-test`): the .deb built by `make package`
# holds what it should, installs with dpkg on this machine, its passthru
# validates the installed configuration, its man pages render without
# warnings, its units verify, `dpkg -r` keeps the conffile and `dpkg -P`
# removes it. Leaves the machine as it found it (the passthru system user
# stays, as after any purge).
set -euo pipefail

deb=${1:?usage: test-package.sh PATH.deb}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
conf=/etc/passthru/passthru.toml

fail() { echo "package test: $*" >&2; exit 1; }

if dpkg -s passthru >/dev/null 2>&1; then
    fail "a passthru package is already installed here; remove it first (dpkg -P passthru): this test installs and purges its own"
fi
installed=""
cleanup() {
    if [ -n "$installed" ]; then
        $SUDO dpkg -P passthru >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

echo "package test: contents of $deb"
contents=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|')
for path in \
    /usr/bin/passthru /usr/bin/passthru-certs /usr/bin/lb-sim \
    /usr/share/man/man1/passthru.1.gz /usr/share/man/man1/passthru-run.1.gz \
    /usr/share/man/man1/passthru-check.1.gz /usr/share/man/man1/passthru-certs.1.gz \
    /usr/share/man/man1/lb-sim.1.gz /usr/share/man/man5/passthru.toml.5.gz \
    /usr/share/bash-completion/completions/passthru \
    /usr/share/bash-completion/completions/passthru-certs \
    /usr/share/bash-completion/completions/lb-sim \
    /usr/share/zsh/vendor-completions/_passthru \
    /usr/share/fish/vendor_completions.d/passthru.fish \
    /usr/lib/systemd/system/passthru.service /usr/lib/systemd/system/passthru.socket \
    /etc/passthru/passthru.toml \
    /usr/share/doc/passthru/README.md /usr/share/doc/passthru/operations.md \
    /usr/share/doc/passthru/configuration.md /usr/share/doc/passthru/copyright \
    /usr/share/doc/passthru/third-party-licences.txt; do
    grep -qx -- "$path" <<<"$contents" || fail "$path is not in $deb"
done
conffiles=$(dpkg-deb -I "$deb" conffiles)
grep -qx "$conf" <<<"$conffiles" || fail "$conf is not marked as a conffile (conffiles: $conffiles)"
# Units are installed, not enabled: no symlinks into *.wants.
if grep -q '\.wants/' <<<"$contents"; then fail "the package enables a unit"; fi

echo "package test: dpkg -i"
installed=1
$SUDO dpkg -i "$deb" >/dev/null
getent passwd passthru >/dev/null || fail "the passthru system user was not created"
/usr/bin/passthru --version | grep -Eq '^passthru [0-9.]+ \((commit [0-9a-f]+|built outside a git checkout, commit unknown)\)$' \
    || fail "unexpected --version: $(/usr/bin/passthru --version)"
/usr/bin/passthru check --config "$conf" || fail "the installed configuration does not pass passthru check"
notices=/usr/share/doc/passthru/third-party-licences.txt
grep -q '^======== tikv-jemalloc-sys ' "$notices" && grep -q 'Redistribution and use in source and binary forms' "$notices" \
    || fail "$notices does not carry jemalloc's licence"

echo "package test: man pages"
for page in /usr/share/man/man1/passthru*.1* /usr/share/man/man1/lb-sim*.1* /usr/share/man/man5/passthru.toml.5*; do
    warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || fail "man -l $page failed: $warnings"
    [ -z "$warnings" ] || fail "man -l $page: $warnings"
done
MANWIDTH=80 man -l /usr/share/man/man5/passthru.toml.5* 2>/dev/null | grep -q drain_timeout \
    || fail "passthru.toml(5) does not describe drain_timeout"

echo "package test: systemd units"
verify=$(systemd-analyze verify /usr/lib/systemd/system/passthru.service /usr/lib/systemd/system/passthru.socket 2>&1) \
    || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
security=$(systemd-analyze security --offline=true --no-pager /usr/lib/systemd/system/passthru.service 2>&1 | tail -1)
echo "package test: $security"
grep -Eq 'exposure level .*: [0-2]\.[0-9] (OK|SAFE)' <<<"$security" || fail "exposure above 2.9: $security"

echo "package test: reinstalling (an upgrade) keeps an edited configuration"
echo "# edited by the package test" | $SUDO tee -a "$conf" >/dev/null
$SUDO dpkg -i --force-confold "$deb" >/dev/null
grep -q "^# edited by the package test$" "$conf" || fail "reinstalling the package replaced the edited $conf"

echo "package test: dpkg -r keeps the conffile"
$SUDO dpkg -r passthru >/dev/null
[ ! -e /usr/bin/passthru ] || fail "/usr/bin/passthru is still there after dpkg -r"
[ -f "$conf" ] || fail "$conf was removed by dpkg -r"

echo "package test: dpkg -P removes it"
$SUDO dpkg -P passthru >/dev/null
installed=""
[ ! -e "$conf" ] || fail "$conf is still there after dpkg -P"
echo "package test: ok"

#!/bin/bash
# test/install/check_install.sh - `cmake --install` puts the command, its
# manual page and its systemd unit where they belong, and the page renders
# without warnings.
#
#   check_install.sh BUILD_DIR
# Installs BUILD_DIR (already built) into a temporary DESTDIR with the
# default prefix, then checks:
#  - PREFIX/sbin/rule2xdp runs (--version);
#  - PREFIX/share/man/man8/rule2xdp.8 exists and `man -l` renders it with
#    every groff warning on (--warnings=w, groff's -ww; man-db's
#    `--warnings=all` reports nothing at all here) and nothing on stderr;
#  - the page documents every option `rule2xdp --help` lists, and the exit
#    codes 0 to 3;
#  - PREFIX/lib/systemd/system/rule2xdp-accelerate@.service starts
#    PREFIX/sbin/rule2xdp, and its ExecStopPost, run as systemd would for
#    the instance eth0,veth-b, unloads each interface of the list.
# Needs no root.
set -euo pipefail
build=${1:?usage: check_install.sh BUILD_DIR}
die() { printf 'check_install: FAIL: %s\n' "$*" >&2; exit 1; }
command -v man >/dev/null || die "man (man-db) is missing"
dest=$(mktemp -d /tmp/r2x-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT

DESTDIR=$dest cmake --install "$build" >"$dest.log" 2>&1 || die "cmake --install failed: $(cat "$dest.log")"
rm -f "$dest.log"
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
bin=$dest$prefix/sbin/rule2xdp
page=$dest$prefix/share/man/man8/rule2xdp.8
[ -x "$bin" ] || die "no $bin: $(find "$dest" -type f)"
[ -f "$page" ] || die "no $page: $(find "$dest" -type f)"
version=$("$bin" --version) || die "the installed rule2xdp does not run"
echo "installed: $bin ($version), $page"

LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=w -l "$page" >"$dest/page.txt" 2>"$dest/warnings.txt" ||
  die "man -l failed: $(cat "$dest/warnings.txt")"
[ ! -s "$dest/warnings.txt" ] || die "man -l warns: $(cat "$dest/warnings.txt")"
grep -q "rule2xdp - compile iptables rules" "$dest/page.txt" || die "the page has no NAME line"

# Every option the command knows is in the page (rendered: hyphens plain).
for opt in $("$bin" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
  grep -q -- "$opt" "$dest/page.txt" || die "the page does not document $opt"
done
for code in 0 1 2 3; do
  sed -n '/^EXIT STATUS/,/^FILES/p' "$dest/page.txt" | grep -Eq "^ +$code( |$)" ||
    die "EXIT STATUS does not list $code"
done
echo "man -l renders it without warnings; every option of --help and exit codes 0-3 are in it"

# The systemd unit of --accelerate --follow names the installed command.
unit=$dest$prefix/lib/systemd/system/rule2xdp-accelerate@.service
[ -f "$unit" ] || die "no $unit: $(find "$dest" -type f)"
grep -qx "ExecStart=$prefix/sbin/rule2xdp --accelerate %I --follow" "$unit" ||
  die "$unit does not start $prefix/sbin/rule2xdp --accelerate %I --follow: $(grep ^Exec "$unit")"
grep -q '^ExecStopPost=.*rule2xdp --unload' "$unit" || die "$unit does not unload on stop"
! grep -q '@[A-Z_]*@' "$unit" || die "$unit has unconfigured @VARIABLES@"
# ExecStopPost as systemd would run it for the instance "eth0,veth-b"
# (`$$' is `$', %I the unescaped instance), with a stand-in for rule2xdp
# that records its arguments: one --unload per interface of the list.
stop=$(sed -n 's/^ExecStopPost=-//p' "$unit")
stop=${stop//\$\$/\$}
stop=${stop//%I/eth0,veth-b}
stop=${stop//$prefix\/sbin\/rule2xdp/$dest\/stub-rule2xdp}
printf '#!/bin/sh\necho "$*" >>"%s"\n' "$dest/stub.log" >"$dest/stub-rule2xdp"
chmod +x "$dest/stub-rule2xdp"
eval "$stop" || die "ExecStopPost failed: $stop"
[ "$(cat "$dest/stub.log")" = "--unload eth0
--unload veth-b" ] || die "ExecStopPost ran: $(cat "$dest/stub.log") (from: $stop)"
echo "installed: $unit"
log_unit=$dest$prefix/lib/systemd/system/rule2xdp-log@.service
grep -qx "ExecStart=$prefix/sbin/rule2xdp --log %I --log-to kmsg" "$log_unit" ||
  die "$log_unit does not start $prefix/sbin/rule2xdp --log %I --log-to kmsg"
echo "installed: $log_unit"

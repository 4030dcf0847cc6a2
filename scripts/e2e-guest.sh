#!/bin/bash
# Runs INSIDE the e2e VM (installed by scripts/e2e-run.sh into a copy of the image as
# /usr/local/lib/e2e/guest.sh, started by e2e-check.service); never on the host.
# Usage: guest.sh            (the phase comes from `e2e.phase=` on the kernel command line)
#   standin  loopback signal path without acoupi: capture from hw:Loopback,1,0 while
#            e2e-signal.service plays the counter signal into hw:Loopback,0,0
#   1        first boot of the baked image: READY, status, recordings, hardening, kill -9,
#            watchdog, heartbeats; ends with `systemctl reboot`
#   2        second boot of the same disk: deployment continues, no duplicate row,
#            heartbeats and recordings on both sides of the reboot; ends with poweroff
# Output: `E2E <check> PASS|FAIL <detail>` and `E2E-DATA <key> <value>` lines, on the serial
# console and in /var/lib/e2e/results-<phase>.txt (read back from outside with debugfs).
set -Eeuo pipefail
state=/var/lib/e2e
mkdir -p "$state"
phase=$(sed -n 's/.*e2e\.phase=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -n "$phase" ] || phase=none
results=$state/results-$phase.txt
: > "$results"
db=/var/lib/acoupi/storages/metadata.db
recdir=/var/lib/acoupi/storages/recordings
# How long each service gets to become READY (e2e.wait= on the kernel command line).
ready_wait=$(sed -n 's/.*e2e\.wait=\([0-9]*\).*/\1/p' /proc/cmdline)
ready_wait=${ready_wait:-150}

emit() { echo "$*" | tee -a "$results"; sync "$results" 2> /dev/null || true; }
check() { emit "E2E $1 $2 ${*:3}"; }
data() { emit "E2E-DATA $1 ${*:2}"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
prop() { systemctl show -p "$2" --value "$1"; }
# Monotonic µs timestamps of systemd → seconds since boot.
mono_s() { awk -v u="$(prop "$1" "$2")" 'BEGIN{printf "%.1f", u/1e6}'; }
finish() {
  data end_uptime "$(uptime_s)"
  sync
  case $phase in
    1) systemctl reboot ;;
    *) systemctl poweroff ;;
  esac
}
# Any unexpected failure: report it, still reboot/power off (the host waits for that), stop.
# With `set -E` the trap also fires inside $(...): a pipeline there that may legitimately
# fail (grep finding nothing) must end in `|| true`.
trap 'trap - ERR; check script FAIL "guest.sh aborted at line $LINENO"; finish; exit 1' ERR

# wait_until SECONDS COMMAND...: poll every 0.5 s; succeed as soon as COMMAND does.
wait_until() {
  local limit=$1 t0
  shift
  t0=$(date +%s)
  until "$@"; do
    [ $(($(date +%s) - t0)) -lt "$limit" ] || return 1
    sleep 0.5
  done
}
# SQLite as the service user: root must not create root-owned -wal/-shm files next to
# the daemon's database.
q() { runuser -u acoupi -- sqlite3 -readonly "$db" "$1" 2> /dev/null || echo "?"; }
active_ready() {
  [ "$(prop "$1" ActiveState)" = active ] && [ -n "$(prop "$1" StatusText)" ]
}
n_wav() { { find "$recdir" -name '*.wav' 2> /dev/null || true; } | wc -l; }
has_wav() { [ "$(n_wav)" -gt "${1:-0}" ]; }
heartbeats_over() { local n; n=$(q 'SELECT count(*) FROM heartbeat'); [ "$n" != "?" ] && [ "$n" -gt "$1" ]; }
signal_active() { [ "$(prop e2e-signal.service ActiveState)" = active ]; }
restarted() { [ "$(prop acoupi.service NRestarts)" -gt "$1" ] && [ "$(prop acoupi.service ActiveState)" = active ]; }

services_ready() {
  local u
  for u in acoupi.service acoupi-beat.service; do
    if wait_until "$ready_wait" active_ready "$u"; then
      check "ready:$u" PASS "ActiveState=active StatusText=\"$(prop "$u" StatusText)\" at $(mono_s "$u" ActiveEnterTimestampMonotonic) s"
    else
      check "ready:$u" FAIL "ActiveState=$(prop "$u" ActiveState) SubState=$(prop "$u" SubState) StatusText=\"$(prop "$u" StatusText)\""
    fi
  done
  data boot_to_ready "$(mono_s acoupi.service ActiveEnterTimestampMonotonic)"
}

status_json() {
  local out
  if out=$(acoupi deployment status --json 2>&1); then
    data "status_$1" "$(printf '%s' "$out" | tr -d '\n')"
  else
    check "status-json:$1" FAIL "acoupi deployment status --json failed: $(printf '%s' "$out" | tr '\n' ' ')"
  fi
}

# `deployment status` reports the restarts systemd made (kill -9, watchdog) as systemctl does.
status_restarts() {
  local want got
  want=$(prop acoupi.service NRestarts)
  got=$( { acoupi deployment status --json 2> /dev/null || true; } | tr -d ' \n' | { grep -o '"acoupi_restarts":[0-9]*' || true; } | cut -d: -f2)
  data status_services "$( { acoupi deployment status 2> /dev/null || true; } | { grep -E '^ +(acoupi|beat) :' || true; } | tr -s ' ' | tr '\n' '|')"
  if [ -n "$got" ] && [ "$got" = "$want" ] && [ "$want" -ge 2 ]; then
    check status-restarts PASS "deployment status says acoupi_restarts=$got, as NRestarts"
  else
    check status-restarts FAIL "deployment status says acoupi_restarts=${got:-none}, NRestarts=$want (expected >= 2)"
  fi
}

# `acoupi config set` (as root) and `systemctl reload` make both daemons reread the
# configuration (SIGHUP) without a restart: the beat used to die of SIGHUP. The value set
# is a password, so the file becomes mode 0600: it must then belong to the acoupi user,
# or the services could not read it (`reload refused`).
reload_both() {
  local n_run n_beat out since owner reloaded refused
  n_run=$(prop acoupi.service NRestarts)
  n_beat=$(prop acoupi-beat.service NRestarts)
  since=$(date '+%Y-%m-%d %H:%M:%S')
  out=$(acoupi config set messaging.mqtt.password e2e-secret 2>&1 || true)
  systemctl reload acoupi-beat.service 2> /dev/null || true
  sleep 3
  owner=$(stat -c '%U %a' /etc/acoupi/acoupi.ron)
  reloaded=$( { journalctl -q -o cat -u acoupi.service -u acoupi-beat.service --since "$since" 2> /dev/null || true; } | { grep -c 'configuration reloaded' || true; })
  refused=$( { journalctl -q -o cat -u acoupi.service -u acoupi-beat.service --since "$since" 2> /dev/null || true; } | { grep -c 'reload refused' || true; })
  if printf '%s' "$out" | grep -q 'reloaded running recorder' && printf '%s' "$out" | grep -q 'reloaded running beat' &&
    [ "$owner" = "acoupi 600" ] && [ "${reloaded:-0}" -ge 3 ] && [ "${refused:-0}" = 0 ] &&
    [ "$(prop acoupi.service NRestarts)" = "$n_run" ] && [ "$(prop acoupi-beat.service NRestarts)" = "$n_beat" ] &&
    [ "$(prop acoupi-beat.service ActiveState)" = active ] && [ "$(prop acoupi.service ActiveState)" = active ]; then
    check reload-both PASS "config set reloaded recorder and beat, systemctl reload the beat: $reloaded reloads, file '$owner', NRestarts unchanged ($n_run, $n_beat)"
  else
    check reload-both FAIL "config set said: $(printf '%s' "$out" | tr '\n' ' '); file '$owner'; $reloaded reloaded, $refused refused; NRestarts $n_run -> $(prop acoupi.service NRestarts), beat $n_beat -> $(prop acoupi-beat.service NRestarts) $(prop acoupi-beat.service ActiveState)"
  fi
}

# The hardened boot import (ProtectSystem=strict, two capabilities, no network) still did
# its job on the first boot: it installed the baked site configuration and started the
# deployment (the deployment row checked from outside comes from it).
boot_import() {
  local u=acoupi-boot-import.service result
  result="$(prop "$u" Result) status=$(prop "$u" ExecMainStatus)"
  if [ "$result" = "success status=0" ] && [ -f /boot/firmware/acoupi-imported.ron ] &&
    [ ! -e /boot/firmware/acoupi-error.txt ]; then
    check boot-import PASS "$u: $result, acoupi-imported.ron on the boot partition"
  else
    check boot-import FAIL "$u: $result; boot partition: $(echo /boot/firmware/acoupi*); journal: $( { journalctl -q -o cat -u "$u" 2> /dev/null || true; } | tail -n 3 | tr '\n' '|')"
  fi
}

security() {
  local u v
  for u in acoupi.service acoupi-beat.service acoupi-boot-import.service; do
    v=$(systemd-analyze security "$u" 2> /dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -n "$v" ] && awk -v v="$v" 'BEGIN{exit !(v <= 2.0)}'; then
      check "security:$u" PASS "exposure $v <= 2.0"
    else
      check "security:$u" FAIL "exposure ${v:-unknown} > 2.0"
    fi
  done
}

# kill -9 of `acoupi run`: systemd restarts it, the interrupted *.wav.part is repaired or
# discarded (never left behind as a .part nor listed in metadata.db without its file).
kill9() {
  local n0 pid parts t0 repaired left=""
  n0=$(prop acoupi.service NRestarts)
  pid=$(prop acoupi.service MainPID)
  parts=$(find /run/acoupi -name '*.part' -printf '%f ' 2> /dev/null || true)
  data kill9_parts "${parts:-none}"
  t0=$(uptime_s)
  systemctl kill -s KILL --kill-whom=main acoupi.service
  if wait_until 60 restarted "$n0"; then
    check kill9-restart PASS "pid $pid killed, NRestarts $n0 -> $(prop acoupi.service NRestarts), active again after $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN{printf "%.1f", b-a}') s"
  else
    check kill9-restart FAIL "NRestarts=$(prop acoupi.service NRestarts) ActiveState=$(prop acoupi.service ActiveState)"
  fi
  wait_until 30 active_ready acoupi.service || true
  for p in $parts; do
    if find /run/acoupi /var/lib/acoupi -name "$p" 2> /dev/null | grep -q .; then left="$left $p"; fi
  done
  # The restarted recorder found the .part (the runtime directory survives a restart)
  # and repaired or discarded it: its journal says which.
  repaired=$( { journalctl -q -o cat -u acoupi.service --since "-60s" 2> /dev/null || true; } | { grep -c -E 'recovered an interrupted recording|discarded an interrupted recording' || true; })
  if [ -z "$left" ] && [ -n "$parts" ] && [ "${repaired:-0}" -ge 1 ]; then
    check kill9-part-file PASS "interrupted file(s) ${parts} repaired or discarded by the restarted recorder ($repaired journal line(s))"
  else
    check kill9-part-file FAIL "parts '${parts:-none}', still present after restart:'$left', repair lines in the journal: ${repaired:-0}"
  fi
  data kill9_journal "$( { journalctl -q -o cat -u acoupi.service --since "-60s" 2> /dev/null || true; } | { grep -i -E 'recovered|discarded|interrupted|part' || true; } | tr '\n' '|' | cut -c1-400)"
}

# Watchdog: freeze `acoupi run` (SIGSTOP) so it stops sending WATCHDOG=1; systemd must
# abort and restart it within WatchdogSec + TimeoutAbortSec + RestartSec. Stopping the feed
# instead would prove nothing here: snd-aloop's capture keeps delivering silence when its
# playback side stops (measured by the stand-in run), as a real USB microphone would not.
watchdog() {
  local n0 wd t0 pid
  n0=$(prop acoupi.service NRestarts)
  wd=$(prop acoupi.service WatchdogUSec)
  pid=$(prop acoupi.service MainPID)
  data watchdog_usec "$wd"
  t0=$(uptime_s)
  kill -STOP "$pid"
  if wait_until 150 restarted "$n0"; then
    check watchdog-restart PASS "pid $pid frozen; restarted after $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN{printf "%.1f", b-a}') s (WatchdogSec=$wd)"
  else
    check watchdog-restart FAIL "no restart within 150 s of freezing pid $pid (NRestarts=$(prop acoupi.service NRestarts), WatchdogSec=$wd)"
  fi
  data watchdog_journal "$( { journalctl -q -o cat --since "-160s" 2> /dev/null || true; } | { grep -i watchdog || true; } | tr '\n' '|' | cut -c1-400)"
  wait_until 60 active_ready acoupi.service || true
}

# Overrun: freeze `acoupi run` for 3 s, longer than its ~1 s ALSA buffer and far shorter
# than WatchdogSec. The snd-aloop driver overruns; the recorder must recover, record the
# gap (reason xrun) and carry on, without a restart.
xrun_gaps() { local n; n=$(q "SELECT count(*) FROM gap WHERE reason = 'xrun'"); echo "${n//[!0-9]/}"; }
xrun_gap_over() { [ "$(xrun_gaps)" -gt "$1" ]; }
xrun() {
  local n0 pid g0
  n0=$(prop acoupi.service NRestarts)
  pid=$(prop acoupi.service MainPID)
  g0=$(xrun_gaps)
  kill -STOP "$pid"
  sleep 3
  kill -CONT "$pid"
  if wait_until 20 xrun_gap_over "${g0:-0}" && [ "$(prop acoupi.service NRestarts)" = "$n0" ] &&
    [ "$(prop acoupi.service MainPID)" = "$pid" ]; then
    check xrun-recovered PASS "pid $pid frozen 3 s: overrun recovered, $(xrun_gaps) xrun gap row(s), no restart"
  else
    check xrun-recovered FAIL "xrun gap rows $g0 -> $(xrun_gaps); NRestarts $n0 -> $(prop acoupi.service NRestarts)"
  fi
}

counts() {
  data "recording_rows_$1" "$(q 'SELECT count(*) FROM recording')"
  data "deployment_rows_$1" "$(q 'SELECT count(*) FROM deployment')"
  data "heartbeat_rows_$1" "$(q 'SELECT count(*) FROM heartbeat')"
  data "wav_files_$1" "$(n_wav)"
}

standin() {
  local f=$state/standin.raw
  wait_until 60 signal_active || check signal FAIL "e2e-signal.service not active"
  sleep 1
  if arecord -q -D hw:Loopback,1,0 -t raw -f S16_LE -r 48000 -c 1 -d 3 "$f"; then
    check standin-capture PASS "$(stat -c %s "$f") bytes from hw:Loopback,1,0"
  else
    check standin-capture FAIL "arecord from hw:Loopback,1,0 failed"
  fi
  # Does capture still deliver frames when the feed (and the Clock card) stops?
  systemctl stop e2e-signal.service
  sleep 1
  rm -f "$state/stall.raw"
  timeout 4 arecord -q -D hw:Loopback,1,0 -t raw -f S16_LE -r 48000 -c 1 -d 2 "$state/stall.raw" || true
  data stall_bytes "$(stat -c %s "$state/stall.raw" 2> /dev/null || echo 0)"
}

data phase "$phase"
data kernel "$(uname -r)"
data cards "$(tr '\n' ' ' < /proc/asound/cards)"
case $phase in
  standin) standin ;;
  1)
    services_ready
    # A property of the unit files: checked even when the daemon does not start.
    security
    boot_import
    if [ "$(prop acoupi.service ActiveState)" != active ]; then
      for c in first-recording kill9-restart watchdog-restart status-restarts; do check "$c" FAIL "skipped: acoupi.service is not active"; done
      status_json 1
    else
      if wait_until 120 has_wav 0; then
        data boot_to_first_recording "$(uptime_s)"
        check first-recording PASS "$( { find "$recdir" -name '*.wav' || true; } | head -n1)"
      else
        check first-recording FAIL "no WAV under $recdir after 120 s"
      fi
      status_json 1
      xrun
      kill9
      watchdog
      status_restarts
      wait_until 60 heartbeats_over 0 || true
    fi
    counts 1
    ;;
  2)
    services_ready
    if [ "$(prop acoupi.service ActiveState)" = active ]; then
      before=$(sed -n 's/^E2E-DATA wav_files_1 //p' "$state/results-1.txt" 2> /dev/null || echo 0)
      hb=$(sed -n 's/^E2E-DATA heartbeat_rows_1 //p' "$state/results-1.txt" 2> /dev/null || echo 0)
      wait_until 90 has_wav "$((${before:-0} + 2))" || true
      hb=${hb//[!0-9]/}
      wait_until 60 heartbeats_over "${hb:-0}" || true
      reload_both
    fi
    status_json 2
    counts 2
    ;;
  *) check phase FAIL "no e2e.phase= on the kernel command line" ;;
esac
trap - ERR
finish

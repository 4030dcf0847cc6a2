#!/usr/bin/env python3
"""Whole-recorder cost: CPU seconds per audio hour of `acoupi run` (capture, WAV writing,
rows in metadata.db, moves into the recordings folder), next to `arecord` reading the
same kind of source for the same time.

Both read a FIFO through alsa-lib's `file` plugin, fed in real time (0.2 s a write), so
the daemon runs as on a device: its management ticks, watchdog and control socket
included. The temporary audio goes to a tmpfs (/dev/shm, as /run/acoupi/tmp on the
device) and the recordings and metadata.db to the disk under the work directory, so a
finished file is copied and synced as on the device. Start-up and shutdown are fixed
costs, not per audio hour: each side runs for SHORT and for LONG seconds and the
difference is reported (the marginal cost per audio hour), then the runs' own totals.

Usage: scripts/bench-daemon-cpu.py ACOUPI_BINARY [RATE] [SHORT] [LONG]
       (defaults 48000 Hz, 20 s, 140 s). To see where the recorder's cost goes:
       BENCH_FILE_S (file length, default 10 s), BENCH_TMP_ON_DISK=1 (the temporary
       audio beside the recordings: a move is a hard link, no copy), BENCH_ONLY_ACOUPI=1. Runs as any user; nothing outside a temporary
       directory and a folder in /dev/shm is touched. User mode: ACOUPI_HOME, the
       systemctl test double (tests/support/fake-systemctl).
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_SYSTEMCTL = os.path.join(REPO, "tests", "support", "fake-systemctl")
CHUNK_S = 0.2


def feed(fifo, rate, stop):
    """Writes silence into `fifo` at real-time pace until `stop` is set or the reader
    goes away."""
    chunk = b"\0" * int(rate * CHUNK_S) * 2
    with open(fifo, "wb", buffering=0) as f:
        nxt = time.monotonic()
        while not stop.is_set():
            try:
                f.write(chunk)
            except (BrokenPipeError, OSError):
                return
            nxt += CHUNK_S
            time.sleep(max(0.0, nxt - time.monotonic()))


def peak_rss_kib(pid):
    """The process's own peak RSS (`VmHWM`): `wait4`'s maximum would start at this
    script's, which the child inherits through exec."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measured(cmd, env, seconds, fifo, rate, stop_with_sigterm):
    """Runs `cmd` with the feeder for `seconds` of wall time; returns (CPU s, peak RSS
    KiB, sampled every 0.2 s until it ends)."""
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(fifo, rate, stop), daemon=True)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    feeder.start()
    peak = 0
    until = time.monotonic() + seconds
    while True:
        peak = max(peak, peak_rss_kib(p.pid))
        if stop_with_sigterm and time.monotonic() >= until:
            p.send_signal(signal.SIGTERM)
            _, status, ru = os.wait4(p.pid, 0)
            break
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            break
        time.sleep(0.2)
    p.returncode = 0  # reaped above: keep Popen from waiting again
    stop.set()
    if os.WEXITSTATUS(status) != 0:
        sys.exit(f"{cmd[0]} exited with status {status}")
    return ru.ru_utime + ru.ru_stime, peak


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    acoupi = os.path.abspath(sys.argv[1])
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 48000
    short = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    long_ = int(sys.argv[4]) if len(sys.argv) > 4 else 140
    file_s = int(os.environ.get("BENCH_FILE_S", "10"))
    work = tempfile.mkdtemp(prefix="acoupi-bench-")
    on_disk = os.environ.get("BENCH_TMP_ON_DISK") == "1"
    shm = tempfile.mkdtemp(prefix="acoupi-bench-", dir=work if on_disk else "/dev/shm")
    fifo = os.path.join(work, "mic.fifo")
    os.mkfifo(fifo)
    conf = os.path.join(work, "asound.conf")
    with open(conf, "w") as f:
        f.write(
            "pcm.nullpcm { type null }\n"
            f'pcm.filecap {{ type file slave.pcm "nullpcm" file "/dev/null" infile "{fifo}" format "raw" }}\n'
        )
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "ACOUPI_LOG", "RUST_LOG"):
        env.pop(k, None)
    state = os.path.join(work, "systemctl-state")
    os.makedirs(state)
    env.update(
        ACOUPI_HOME=os.path.join(work, "home"),
        XDG_CONFIG_HOME=os.path.join(work, "xdg"),
        ACOUPI_SYSTEMCTL=FAKE_SYSTEMCTL,
        FAKE_SYSTEMCTL_STATE=state,
        FAKE_SYSTEMCTL_LOG=os.path.join(work, "systemctl.log"),
        FAKE_SYSTEMCTL_UNIT_PATH=os.path.join(work, "xdg", "systemd", "user"),
        ALSA_CONFIG_PATH=conf,
    )
    sets = [
        "microphone.device_name=filecap",
        f"microphone.samplerate={rate}",
        f"recording.duration={file_s}",
        f"recording.interval={file_s}",
        "recording.schedule=[]",
        f"paths.tmp_audio={shm}",
    ]
    setup = [acoupi, "setup", "--no-prompt", "--program", "default"]
    for s in sets:
        setup += ["--set", s]
    subprocess.run(setup, env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        [acoupi, "deployment", "start", "--name", "bench", "--latitude", "51.5",
         "--longitude", "-0.12", "--no-check", "--no-block"],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )
    results = {}
    names = ("acoupi",) if os.environ.get("BENCH_ONLY_ACOUPI") == "1" else ("acoupi", "arecord")
    for name in names:
        per = []
        for secs in (short, long_):
            if name == "acoupi":
                cmd, sigterm = [acoupi, "run"], True
            else:
                out = os.path.join(shm, "arecord.wav")
                cmd = ["arecord", "-q", "-D", "filecap", "-f", "S16_LE", "-c", "1",
                       "-r", str(rate), "-d", str(secs), out]
                sigterm = False
            per.append(measured(cmd, env, secs, fifo, rate, sigterm))
        results[name] = per
        (c1, r1), (c2, r2) = per
        print(
            f"{name:8s} marginal {(c2 - c1) * 3600 / (long_ - short):.3f} CPU s per audio hour; "
            f"totals {c1:.3f} s for {short} s, {c2:.3f} s for {long_} s; peak RSS {max(r1, r2)} KiB",
            flush=True,
        )
    if "arecord" in results:
        a, r = results["acoupi"], results["arecord"]
        ratio = (a[1][0] - a[0][0]) / max(1e-9, r[1][0] - r[0][0])
        print(f"ratio acoupi / arecord, marginal: {ratio:.2f}x")
    kept = sum(len(fs) for _, _, fs in os.walk(os.path.join(work, "home", "storages", "recordings")))
    print(f"files kept by the recorder: {kept}")
    subprocess.run(["rm", "-rf", work, shm])


if __name__ == "__main__":
    main()

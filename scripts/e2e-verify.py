#!/usr/bin/env python3
"""Judge an e2e run from outside the VM and print the report (run by scripts/e2e-run.sh).

Usage: scripts/e2e-verify.py --mode standin|acoupi --run DIR [--site FILE]

Reads DIR/results-*.txt (written by the guest, read back with debugfs), DIR/host.txt, and
for --mode acoupi the storages tree rdumped from the powered-off disk (DIR/storages):
metadata.db rows against WAV files, the WAV content against the played counter signal
(sample n = n mod 65536), no missing sample between consecutive full files, the JSON of
`acoupi deployment status --json` before and after the reboot, and the example model's
output (baked with MODEL=) on the recordings. Exit 1 on any FAIL.
"""

import argparse
import array
import json
import re
import sqlite3
import sys
import wave
from datetime import datetime, timezone
from pathlib import Path

GUEST_STORAGES = "/var/lib/acoupi/storages"
RATE = 48000


class Report:
    def __init__(self):
        self.lines = []
        self.failed = 0

    def check(self, name, ok, detail=""):
        status = "PASS" if ok else "FAIL"
        self.failed += 0 if ok else 1
        self.lines.append(f"{status:4} {name:32} {detail}")

    def info(self, name, value):
        self.lines.append(f"INFO {name:32} {value}")


def read_results(run):
    """Guest and host lines: (checks as (name, status, detail), data as dict)."""
    checks, data = [], {}
    for f in sorted(run.glob("results-*.txt")) + [run / "host.txt"]:
        if not f.exists():
            continue
        for line in f.read_text(errors="replace").splitlines():
            parts = line.split(" ", 3)
            if parts[0] == "E2E" and len(parts) >= 3:
                checks.append((parts[1], parts[2], parts[3] if len(parts) > 3 else ""))
            elif parts[0] == "E2E-DATA" and len(parts) >= 2:
                data[parts[1]] = line.split(" ", 2)[2] if len(parts) > 2 else ""
    return checks, data


def counter_runs(samples):
    """(leading zeros, breaks) of a sample sequence that should count up by one mod 2^16."""
    u = [s & 0xFFFF for s in samples]
    lead = 0
    while lead < len(u) and u[lead] == 0:
        lead += 1
    breaks = sum(1 for a, b in zip(u[lead:], u[lead + 1 :]) if (a + 1) & 0xFFFF != b)
    return lead, breaks


def read_wav(path):
    with wave.open(str(path), "rb") as w:
        params = (w.getnchannels(), w.getsampwidth(), w.getframerate())
        frames = w.readframes(w.getnframes())
    samples = array.array("h")
    samples.frombytes(frames[: len(frames) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return params, samples


def parse_time(text):
    t = str(text).strip().replace(" ", "T")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    dt = datetime.fromisoformat(t)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def judge_status(rep, data, key, site_name):
    raw = data.get(key)
    if raw is None:
        rep.check(f"status-json:{key}", False, "no `acoupi deployment status --json` output")
        return None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        rep.check(f"status-json:{key}", False, f"not JSON ({e}): {raw[:120]}")
        return None
    want = {
        ("services", "acoupi"): "active",
        ("services", "beat"): "active",
        ("workers", "status"): "available",
        ("workers", "recording"): "ok",
        ("workers", "default"): "ok",
        ("program", "status"): "ok",
        ("deployment", "status"): "active",
    }
    bad = []
    for (a, b), v in want.items():
        got = (doc.get(a) or {}).get(b) if isinstance(doc.get(a), dict) else None
        if got != v:
            bad.append(f"{a}.{b}={got!r} (want {v!r})")
    dep = doc.get("deployment") if isinstance(doc.get("deployment"), dict) else {}
    if site_name and dep.get("name") != site_name:
        bad.append(f"deployment.name={dep.get('name')!r} (want {site_name!r})")
    for f in ("latitude", "longitude"):
        if not isinstance(dep.get(f), (int, float)):
            bad.append(f"deployment.{f}={dep.get(f)!r}")
    rep.check(f"status-json:{key}", not bad, "; ".join(bad) or raw[:160])
    return doc


def judge_storages(rep, run):
    storages = run / "storages"
    db = storages / "metadata.db"
    if not db.exists():
        rep.check("metadata.db", False, f"{db} not read back from the disk")
        return
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    rep.check("metadata.db-integrity", integrity == "ok", integrity)
    cols = {r[1] for r in con.execute("PRAGMA table_info(recording)")}
    rows = [dict(r) for r in con.execute("SELECT * FROM recording")]
    deployments = con.execute("SELECT count(*) FROM deployment").fetchone()[0]
    rep.check("deployment-rows", deployments == 1, f"{deployments} deployment row(s) after two boots")
    try:
        hb = [parse_time(r[0]) for r in con.execute("SELECT created_on FROM heartbeat ORDER BY created_on")]
    except sqlite3.Error as e:
        hb = []
        rep.check("heartbeat-table", False, str(e))
    rep.info("heartbeat-rows", f"{len(hb)} rows" + (f", {hb[0].isoformat()} .. {hb[-1].isoformat()}" if hb else ""))

    parts = [p for p in storages.rglob("*") if p.name.endswith(".part")]
    rep.check("no-part-files", not parts, ", ".join(str(p.relative_to(storages)) for p in parts[:5]) or "none")
    on_disk = {p.resolve() for p in (storages / "recordings").rglob("*.wav")} if (storages / "recordings").exists() else set()
    files, missing = [], []
    for r in rows:
        path = r.get("path")
        if not path:
            continue
        local = storages / Path(path).relative_to(GUEST_STORAGES) if path.startswith(GUEST_STORAGES + "/") else storages / path
        if not local.exists():
            missing.append(path)
            continue
        files.append((r, local.resolve()))
    orphans = on_disk - {p for _, p in files}
    rep.check("recordings-exist", len(files) > 0, f"{len(rows)} rows, {len(files)} files with a row")
    rep.check("rows-have-files", not missing, f"missing: {missing[:3]}" if missing else f"all {len(files)} kept rows have their file")
    rep.check("files-have-rows", not orphans, f"{len(orphans)} WAV without a row: {[p.name for p in list(orphans)[:3]]}" if orphans else "every WAV has a row")

    bad_fmt, bad_content, lead_zero, bad_frames = [], [], 0, []
    decoded = []
    for r, p in files:
        (ch, width, rate), samples = read_wav(p)
        if (ch, width, rate) != (1, 2, RATE):
            bad_fmt.append(f"{p.name}: {ch}ch {8 * width}bit {rate}Hz")
            continue
        if "frames" in cols and r.get("frames") is not None and r["frames"] != len(samples):
            bad_frames.append(f"{p.name}: row {r['frames']} vs file {len(samples)}")
        lead, breaks = counter_runs(samples)
        lead_zero += 1 if lead else 0
        if breaks or lead == len(samples):
            bad_content.append(f"{p.name}: {breaks} breaks, {lead} leading zeros of {len(samples)}")
        decoded.append((parse_time(r["datetime"]), float(r.get("duration_s") or 0), p, samples))
    rep.check("wav-format", not bad_fmt, "; ".join(bad_fmt[:3]) or f"{len(decoded)} files, mono S16 {RATE} Hz")
    rep.check("wav-frames-match-rows", not bad_frames, "; ".join(bad_frames[:3]) or "frames column = WAV length")
    rep.check(
        "wav-content-is-signal",
        not bad_content and bool(decoded),
        "; ".join(bad_content[:3]) or f"every file is a run of the played counter ({lead_zero} start with silence)",
    )

    decoded.sort(key=lambda d: d[0])
    pairs = gaps = 0
    broken = []
    for (t1, d1, p1, s1), (t2, _d2, p2, s2) in zip(decoded, decoded[1:]):
        full = d1 > 0 and len(s1) == round(d1 * RATE)
        if not full or abs((t2 - t1).total_seconds() - d1) > 0.01 or not s1 or not s2:
            gaps += 1
            continue
        pairs += 1
        if ((s1[-1] & 0xFFFF) + 1) & 0xFFFF != s2[0] & 0xFFFF:
            broken.append(f"{p1.name}->{p2.name}: {s1[-1] & 0xFFFF} then {s2[0] & 0xFFFF}")
    rep.check(
        "gapless-consecutive-files",
        pairs > 0 and not broken,
        "; ".join(broken[:3]) or f"{pairs} consecutive pairs continue sample-exactly ({gaps} boundaries at restarts/reboot skipped)",
    )


def judge_detection(rep, run):
    """The site config runs the example model (classes loud/quiet, 1 s windows, only
    `loud` stored) on every recording; the played counter is a full-scale sawtooth, so
    each analysed recording of a second or more (a whole window) must hold `loud`
    detections, and nothing else. A shorter file (a slot cut by a stop) is one padded
    window that may fall on the quiet part of the ramp: counted, not judged."""
    db = run / "storages" / "metadata.db"
    if not db.exists():
        return
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    recordings = con.execute("SELECT count(*) FROM recording WHERE path IS NOT NULL").fetchone()[0]
    outputs = con.execute(
        "SELECT m.recording_id, m.model_name, count(d.id), r.duration_s FROM model_output m "
        "JOIN recording r ON r.id = m.recording_id "
        "LEFT JOIN detection d ON d.model_output_id = m.id GROUP BY m.id"
    ).fetchall()
    tags = dict(
        con.execute(
            "SELECT t.value, count(*) FROM predicted_tag t GROUP BY t.value"
        ).fetchall()
    )
    names = sorted({name for _, name, _, _ in outputs})
    analysed = len({rid for rid, _, _, _ in outputs})
    empty = sum(1 for _, _, n, secs in outputs if n == 0 and secs >= 1.0)
    short_empty = sum(1 for _, _, n, secs in outputs if n == 0 and secs < 1.0)
    rep.info("detection-rows", f"{len(outputs)} model outputs over {analysed} of {recordings} recordings; tags {tags}")
    rep.check("detection-model-ran", names == ["acoupi-tiny"], f"model names {names}")
    # The file in hand at each stop or reboot may finish after the model's thread stopped.
    rep.check(
        "detection-most-recordings-analysed",
        analysed > 0 and analysed * 2 >= recordings,
        f"{analysed} of {recordings} recordings have a model output",
    )
    rep.check(
        "detection-finds-the-signal",
        empty == 0 and set(tags) == {"loud"},
        f"{empty} outputs of a second or more without a detection ({short_empty} shorter ones without); tags {tags}",
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["standin", "acoupi"], required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--site", type=Path, default=Path(__file__).with_name("e2e-site.ron"))
    args = ap.parse_args()
    rep = Report()
    checks, data = read_results(args.run)
    for name, status, detail in checks:
        rep.check(name, status == "PASS", detail)

    if args.mode == "standin":
        raw = args.run / "standin.raw"
        if raw.exists():
            s = array.array("h")
            s.frombytes(raw.read_bytes())
            lead, breaks = counter_runs(s)
            rep.check("standin-signal-equal", breaks == 0 and lead < len(s), f"{len(s)} samples, {lead} leading zeros, {breaks} breaks")
        else:
            rep.check("standin-signal-equal", False, "standin.raw not read back")
        rep.info("capture-after-feed-stopped", f"{data.get('stall_bytes', '?')} bytes in 2 s (snd-aloop keeps delivering silence)")
    else:
        m = re.search(r'(?<![\w])name:\s*"([^"]*)"', args.site.read_text()) if args.site.exists() else None
        site_name = m.group(1) if m else None
        d1 = judge_status(rep, data, "status_1", site_name)
        d2 = judge_status(rep, data, "status_2", site_name)
        if d1 and d2:
            n1, n2 = d1.get("deployment", {}).get("name"), d2.get("deployment", {}).get("name")
            rep.check("deployment-continues", n1 == n2 and n2 is not None, f"{n1!r} before, {n2!r} after the reboot")

        def num(k):
            try:
                return int(data.get(k, ""))
            except ValueError:
                return None

        h1, h2 = num("heartbeat_rows_1"), num("heartbeat_rows_2")
        rep.check("heartbeats-both-sides", bool(h1) and h2 is not None and h2 > h1, f"{h1} rows before the reboot, {h2} after")
        r1, r2 = num("recording_rows_1"), num("recording_rows_2")
        rep.check("recording-after-reboot", r1 is not None and r2 is not None and r2 > r1, f"{r1} rows before, {r2} after")
        judge_storages(rep, args.run)
        judge_detection(rep, args.run)

    for k in ("boot_to_ready", "boot_to_first_recording", "host_boot_seconds_standin", "host_boot_seconds_1",
              "host_boot_seconds_2", "host_total_seconds", "kernel"):
        if k in data:
            rep.info(k, data[k] + (" s" if k != "kernel" else ""))
    print("\n".join(["", "==== acoupi e2e report ===="] + rep.lines))
    print(f"==== {'FAIL' if rep.failed else 'PASS'}: {rep.failed} failed check(s) ====")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""SMTP senders side by side: this project, a plain smtplib loop and django-newsletter.

The same edition (padded to about 25 KB of HTML) and the same list (reader0..reader<N-1>
@example.com) go into one SMTP sink (``bench/smtp_sink.py``, a process of its own that reads
DATA whole and answers each message after --latency-ms). Each sender runs as a child process:

- ``project``: ``newsletter send`` with provider smtp, ``concurrency`` connections, batches of
  100, the ledger in SQLite (seeded before the clock starts);
- ``smtplib``: ``bench/peers/smtplib_loop.py``, one connection, an ``EmailMessage`` a message;
- ``django``: ``bench/peers/django_newsletter_send.py``, django-newsletter's
  ``Submission.submit()``; the schema, subscriptions and submission are made before the clock
  starts. It runs in a virtualenv of its own, made on first use under ``bench/.peers/`` with
  pinned versions (needs PyPI or a mirror); ``--senders project smtplib`` skips it.

Reported per latency, size and sender: messages a second end to end (the child's whole life)
and at the sink (first to last message accepted), CPU per message (user + system time of the
child, from wait4), peak RSS, and the ratios to the plain loop. The sink's record is checked:
every recipient exactly once, and each message's headers naming its envelope recipient.

Targets on a 2-core machine: at 20 ms and 10,000 recipients, at least 140 messages a second
(concurrency 4), 4x the plain loop; at 0 ms, at most 1.0 ms of CPU a message in the sender;
peak memory at 10,000 within 10 % of that at 1,000.

    .venv/bin/python bench/bench_peers.py [--sizes 1000 10000] [--latencies 0 20]
        [--senders project smtplib django] [--concurrency 4] [--checked]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

from bench_transports import padded_project  # noqa: E402
from figures import figure  # noqa: E402

from tests.process_helpers import WEEK, seed_subscribers, stop_process  # noqa: E402

NEWSLETTER = str(Path(sys.executable).parent / "newsletter")
PEERS = BENCH / ".peers"
DJANGO_PINS = ("django-newsletter==1.2", "Django==5.2.19", "sorl-thumbnail==12.11.0",
               "chardet==5.2.0", "Pillow==11.3.0")
DJANGO_VENV = PEERS / "django-newsletter-1.2"
SECRET = "s" * 32
# At 20 ms and the largest list: messages a second and the ratio to the plain loop; at 0 ms,
# the sender's CPU a message; the peak memory's growth from the smallest list to the largest.
RATE_TARGET, RATIO_TARGET, CPU_TARGET_MS, GROWTH_TARGET = 140.0, 4.0, 1.0, 10.0
LABELS = {"project": "this project", "smtplib": "smtplib loop", "django": "django-newsletter"}


@dataclass
class Result:
    sender: str
    n: int
    latency_ms: float
    wall: float
    cpu: float
    peak_mib: float
    sink_rate: float
    sink_cpu: float

    @property
    def sink_cpu_ms(self) -> float:
        return self.sink_cpu / self.n * 1000

    @property
    def rate(self) -> float:
        return self.n / self.wall

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.n * 1000


# --- the sink --------------------------------------------------------------------------------

class Sink:
    """``bench/smtp_sink.py`` in a process of its own, recording to ``record``."""

    def __init__(self, latency_ms: float, record: Path, log: Path):
        self.record = record
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(BENCH / "smtp_sink.py"), "--port", "0",
                 "--latency-ms", str(latency_ms), "--record", str(record)],
                stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            stop_process(self.proc)
            raise SystemExit(f"the SMTP sink did not start: {line!r}; see {log}")
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self) -> float:
        """Stop it; the CPU seconds it used."""
        stop_process(self.proc)
        self.proc.stdout.close()
        for line in self.log.read_text().splitlines():
            if line.startswith("sink cpu "):
                return float(line.split()[2])
        return float("nan")


def check_record(record: Path, expected: set[str], sender: str) -> float:
    """Everyone exactly once, headers naming the envelope recipient; returns the sink's rate
    (messages a second, first to last accepted)."""
    counts: Counter = Counter()
    stamps = []
    mismatched = 0
    with record.open(encoding="utf-8") as fh:
        for line in fh:
            stamp, rcpt, _size, ok = line.split()
            counts[rcpt] += 1
            stamps.append(float(stamp))
            mismatched += ok != "ok"
    missing = expected - set(counts)
    twice = sorted(e for e, c in counts.items() if c > 1)
    extra = set(counts) - expected
    if missing or twice or extra or mismatched:
        raise SystemExit(f"{sender}: the sink did not get everyone exactly once: "
                         f"{len(missing)} missing, {len(twice)} more than once {twice[:3]}, "
                         f"{len(extra)} unexpected, {mismatched} with headers for another")
    span = max(stamps) - min(stamps)
    return (len(stamps) - 1) / span if span > 0 else float("nan")


# --- running a sender ------------------------------------------------------------------------

# Runs the sender as its own child and reports that child's wait4 rusage. A child forked from
# this process would report this process's RSS as its peak (Linux carries the forking
# process's high-water mark across exec), so the fork happens in this small launcher instead.
LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"wall": time.perf_counter() - start, "status": status,
               "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss}, fh)
"""


def measure(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, float,
                                                                               float]:
    """Run ``cmd``; its wall time, CPU seconds (user + system) and peak RSS in MiB."""
    usage_path = log.with_suffix(".usage.json")
    with log.open("w") as out:
        subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(usage_path), *cmd], env=env,
                       cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       start_new_session=True, check=False)
    usage = json.loads(usage_path.read_text())
    code = os.waitstatus_to_exitcode(usage["status"])
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} exited {code}:\n{log.read_text()[-3000:]}")
    return usage["wall"], usage["cpu"], usage["maxrss_kib"] / 1024


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(extra)
    return env


def project_command(work: Path, project: Path, n: int, port: int, args) -> tuple[list, dict]:
    database_url = f"sqlite:///{work / 'newsletter.db'}"
    seed_subscribers(database_url, n)
    env = clean_env(NEWSLETTER_PROVIDER="smtp", NEWSLETTER_SMTP_HOST="127.0.0.1",
                    NEWSLETTER_SMTP_PORT=str(port), NEWSLETTER_SMTP_SECURITY="none",
                    NEWSLETTER_SECRET_KEY=SECRET, NEWSLETTER_DATABASE_URL=database_url,
                    NEWSLETTER_CONCURRENCY=str(args.concurrency), NEWSLETTER_BATCH_SIZE="100")
    if args.checked:  # an operator's `newsletter check` first: the send reuses its verdict
        subprocess.run([NEWSLETTER, "check", "--week", WEEK], env=env, cwd=project,
                       stdout=subprocess.DEVNULL, check=True)
    return [NEWSLETTER, "send", "--week", WEEK], env


def smtplib_command(work: Path, shared: Path, n: int, port: int, args) -> tuple[list, dict]:
    return [sys.executable, str(BENCH / "peers" / "smtplib_loop.py"), "--port", str(port),
            "--edition", str(shared / "edition.json"),
            "--recipients", str(shared / f"list-{n}.tsv")], clean_env()


def django_command(work: Path, shared: Path, n: int, port: int, args) -> tuple[list, dict]:
    python = str(django_python())
    script = str(BENCH / "peers" / "django_newsletter_send.py")
    db = work / "peers.db"
    # Its virtualenv's packages only: a PYTHONPATH naming a working copy of this project
    # would put our `newsletter` package in place of django-newsletter's.
    env = {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}
    subprocess.run([python, script, "prepare", "--db", str(db),
                    "--edition", str(shared / "edition.json"),
                    "--recipients", str(shared / f"list-{n}.tsv")], check=True, env=env)
    return [python, script, "send", "--db", str(db), "--port", str(port)], env


def django_python() -> Path:
    """The django-newsletter virtualenv's python, made (once) with the pinned versions."""
    python = DJANGO_VENV / "bin" / "python"
    stamp = DJANGO_VENV / ".pins"
    if stamp.is_file() and stamp.read_text() == "\n".join(DJANGO_PINS):
        return python
    print(f"making {DJANGO_VENV.relative_to(ROOT)} ({', '.join(DJANGO_PINS)}) ...", flush=True)
    shutil.rmtree(DJANGO_VENV, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    try:
        subprocess.run([base, "-m", "venv", str(DJANGO_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *DJANGO_PINS],
                       check=True)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"could not make the django-newsletter virtualenv: {exc}") from None
    stamp.write_text("\n".join(DJANGO_PINS))
    return python


COMMANDS = {"project": project_command, "smtplib": smtplib_command, "django": django_command}


def run_one(sender: str, n: int, latency_ms: float, shared: Path, project: Path,
            args) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"nl-peers-{sender}-", dir=shared) as name:
        work = Path(name)
        sink = Sink(latency_ms, work / "sink.log", work / "sink.err")
        try:
            base = project if sender == "project" else shared
            cmd, env = COMMANDS[sender](work, base, n, sink.port, args)
            wall, cpu, peak = measure(cmd, env, project, work / "sender.log")
        finally:
            sink_cpu = sink.stop()
        expected = {f"reader{i}@example.com" for i in range(n)}
        sink_rate = check_record(work / "sink.log", expected, sender)
    return Result(sender, n, latency_ms, wall, cpu, peak, sink_rate, sink_cpu)


# --- the shared edition and list -------------------------------------------------------------

def write_shared(shared: Path, project: Path, sizes: list[int]) -> None:
    """The edition as the peers take it (placeholders as {{field}}), and the lists."""
    from newsletter.config import load_config
    from newsletter.edition.render import render_week

    config = load_config(project / "newsletter.toml", environ={})
    rendered = render_week(config, WEEK)

    def marked(template) -> str:
        out = [template.literals[0]]
        for field, literal in zip(template.fields, template.literals[1:], strict=True):
            out += ["{{" + field + "}}", literal]
        return "".join(out)

    generic = {"name": "", "first_name": "there", "email": "",
               "unsubscribe_url": f"{config.base_url}/unsubscribe",
               "manage_url": f"{config.base_url}/manage"}
    edition = {"name": config.name, "from_address": config.from_address,
               "from": f"{config.name} <{config.from_address}>", "subject": rendered.subject,
               "base_url": config.base_url, "html": marked(rendered.html),
               "text": marked(rendered.text), "html_static": rendered.html.fill(generic)}
    (shared / "edition.json").write_text(json.dumps(edition), encoding="utf-8")
    for n in sizes:
        with (shared / f"list-{n}.tsv").open("w", encoding="utf-8") as fh:
            fh.writelines(f"{i}\treader{i}@example.com\tReader {i}\n" for i in range(n))
    print(f"edition: {len(edition['html'].encode()) / 1024:.1f} KiB of HTML, "
          f"{len(edition['text'].encode()) / 1024:.1f} KiB of text", flush=True)


# --- the report ------------------------------------------------------------------------------

def report(results: list[Result], args) -> None:
    print()
    print(f"{'latency':>7} {'recipients':>10} {'sender':<18} {'msg/s':>7} {'at sink':>8} "
          f"{'CPU ms/msg':>10} {'peak MiB':>9} {'x rate':>7} {'x CPU':>6} {'sink ms/msg':>11}")
    by = {(r.sender, r.n, r.latency_ms): r for r in results}
    for r in results:
        loop = by.get(("smtplib", r.n, r.latency_ms))
        rate_x = f"{r.rate / loop.rate:.1f}" if loop else "-"
        cpu_x = f"{loop.cpu_ms / r.cpu_ms:.1f}" if loop else "-"
        print(f"{r.latency_ms:>5.0f}ms {r.n:>10,} {LABELS[r.sender]:<18} {r.rate:>7.1f} "
              f"{r.sink_rate:>8.1f} {r.cpu_ms:>10.2f} {r.peak_mib:>9.1f} {rate_x:>7} "
              f"{cpu_x:>6} {r.sink_cpu_ms:>11.2f}")
    print("msg/s: end to end; at sink: first to last message accepted; x rate: msg/s over the "
          "smtplib loop's;\nx CPU: the loop's CPU per message over this sender's; sink ms/msg: "
          "the sink's own CPU")
    ours = [r for r in results if r.sender == "project"]
    if not ours:
        return
    largest = max(r.n for r in ours)
    print()
    for r in ours:
        if r.n != largest:
            continue
        loop = by.get(("smtplib", r.n, r.latency_ms))
        about = f"SMTP at {r.latency_ms:.0f} ms, {r.n:,}"
        if r.latency_ms >= 20:
            ratio = (f", {r.rate / loop.rate:.1f}x the plain loop (target "
                     f"{RATIO_TARGET:.0f}x)") if loop else ""
            figure(f"{about}: this project", r.rate, "msg/s", target=RATE_TARGET,
                   line=f"target at {r.latency_ms:.0f} ms, {r.n:,}: {r.rate:.1f} msg/s "
                        f"(target >= {RATE_TARGET:.0f}){ratio}")
            if loop:
                figure(f"{about}: this project over the smtplib loop", r.rate / loop.rate, "x",
                       target=RATIO_TARGET)
            for peer in ("smtplib", "django"):
                if (other := by.get((peer, r.n, r.latency_ms))) is not None:
                    figure(f"{about}: {LABELS[peer]}, for scale", other.rate, "msg/s")
        if r.latency_ms == 0:
            figure(f"{about}: this project's CPU", r.cpu_ms, "ms/msg", target=CPU_TARGET_MS,
                   better="lower",
                   line=f"target at 0 ms, {r.n:,}: {r.cpu_ms:.2f} ms CPU a message (target "
                        f"<= {CPU_TARGET_MS})")
    for latency in sorted({r.latency_ms for r in ours}):
        sizes = sorted((r.n, r.peak_mib) for r in ours if r.latency_ms == latency)
        if len(sizes) > 1:
            (small, low), (big, high) = sizes[0], sizes[-1]
            figure(f"SMTP at {latency:.0f} ms: peak memory growth {small:,} -> {big:,}",
                   (high - low) / low * 100, "%", target=GROWTH_TARGET, better="lower",
                   line=f"memory at {latency:.0f} ms: {low:.1f} MiB at {small:,}, {high:.1f} "
                        f"MiB at {big:,} ({(high - low) / low:+.0%}; target within "
                        f"{GROWTH_TARGET:.0f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 20.0])
    parser.add_argument("--senders", nargs="+", choices=list(COMMANDS),
                        default=list(COMMANDS))
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--checked", action="store_true",
                        help="run `newsletter check` before the clock starts, as an operator "
                             "would: the send reuses the remembered verdict")
    args = parser.parse_args()
    if "django" in args.senders:
        django_python()
    print(f"SMTP senders into one sink; {os.cpu_count()} CPUs; this project with "
          f"concurrency {args.concurrency}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="nl-peers-") as tmp:
        shared = Path(tmp)
        project = padded_project(shared, 25 * 1024)
        write_shared(shared, project, args.sizes)
        for latency in args.latencies:
            for n in args.sizes:
                for sender in args.senders:
                    r = run_one(sender, n, latency, shared, project, args)
                    results.append(r)
                    print(f"  {latency:.0f} ms, {n:,}, {LABELS[sender]}: {r.rate:.1f} msg/s, "
                          f"{r.cpu_ms:.2f} ms CPU/msg, {r.peak_mib:.1f} MiB", flush=True)
    report(results, args)


if __name__ == "__main__":
    main()

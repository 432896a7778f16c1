"""``accord serve`` as a process: it answers /health, drives runs with its workers and stops
cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "ACCORD_DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}",
        "ACCORD_METRICS_TOKEN": "scrape-me",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "accord", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None and health.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        scraped = httpx.get(
            f"http://127.0.0.1:{port}/metrics", headers={"authorization": "Bearer scrape-me"}
        )
        assert "accord_outbox_pending" in scraped.text
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "scrape-me" not in errors


def test_the_demo_serves_its_console_with_a_ready_sign_in(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "accord",
            "demo",
            "--database",
            str(tmp_path / "demo.db"),
            "--port",
            str(port),
        ],
        env={**os.environ, "COLUMNS": "100", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    link = None
    portal = None
    try:
        deadline = time.monotonic() + 120
        for line in process.stdout:
            if "/console/sign-in?" in line:
                link = line.strip()
            if "/portal/link?token=" in line:
                portal = line.strip()
            if line.startswith("serving on") or time.monotonic() > deadline:
                break
        assert link is not None and link.startswith(f"http://127.0.0.1:{port}/console/")
        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            for _ in range(100):
                try:
                    inbox = browser.get(link)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert inbox.url.path == "/console/reviews"
            item = inbox.text.split('href="/console/reviews/', 1)[1].split('"', 1)[0]
            packet = browser.get(f"http://127.0.0.1:{port}/console/reviews/{item}").text
            assert "Submit decision" in packet and "Decide" in packet
        assert portal is not None and portal.startswith(f"http://127.0.0.1:{port}/portal/")
        with httpx.Client(follow_redirects=True, timeout=10) as customer:
            cases = customer.get(portal)
            assert cases.status_code == 200, cases.text
            assert "refund" in cases.text.lower()
            waiting = customer.get(f"http://127.0.0.1:{port}/portal/confirmations")
            assert 'value="confirm"' in waiting.text, waiting.text[:500]
            assert "cancel the order" in waiting.text or "refund the first item" in waiting.text
        with httpx.Client(follow_redirects=True, timeout=10) as someone_else:
            again = someone_else.get(portal)
            assert "already used" in again.text, again.text[:500]
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    assert "token=eyJ" not in errors

"""The scale-out recipe stays valid: API replicas and workers over one PostgreSQL and Redis."""
from __future__ import annotations

import subprocess

import yaml

from tests.data import ROOT


def test_compose_file_validates_and_scales_api_and_workers():
    out = subprocess.run(["docker-compose", "config"], cwd=ROOT, capture_output=True, text=True,
                         env={"SECRET_KEY": "test-secret", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker", "urgent-worker", "dialer", "proxy"}
    assert services["worker"]["command"] == ["quanzu", "worker"]
    assert services["dialer"]["command"] == ["quanzu", "worker", "--dial"]
    assert services["api"]["deploy"]["replicas"] >= 2 and services["worker"]["deploy"]["replicas"] >= 2
    for name in ("api", "worker", "dialer"):  # one database and one Redis behind every replica
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0" and env["SECRET_KEY"] == "test-secret"
        # what a city sets, passed on from the shell (null: unset in the container, never "")
        for var in ("AUDIT_KEY", "SMS_GATEWAY_URL", "SMS_GATEWAY_TOKEN", "GEOCODER", "GEOCODER_URL", "GEOCODER_KEY"):
            assert var in env and env[var] is None, var


def test_compose_passes_a_city_s_settings_from_the_shell_and_requires_a_secret_key():
    city = {"SECRET_KEY": "test-secret", "AUDIT_KEY": "a-long-audit-key-0123", "SMS_GATEWAY_URL": "http://sms.local/send",
            "GEOCODER": "nominatim", "GEOCODER_URL": "http://10.0.0.5:8080", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["docker-compose", "config"], cwd=ROOT, capture_output=True, text=True, env=city, timeout=60)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert {k: env[k] for k in city if k != "PATH"} == {k: v for k, v in city.items() if k != "PATH"}
    missing = subprocess.run(["docker-compose", "config"], cwd=ROOT, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr

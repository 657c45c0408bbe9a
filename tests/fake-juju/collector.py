#!/usr/bin/python3 -SE
"""A fake collector subordinate (opentelemetry-collector / grafana-agent) on `cos-agent`.

The simulated model (tests/model) runs this as a subordinate unit, on its principal's machine,
with Juju's hook environment and the fake hook tools on PATH. Like the real collector's
`cos_agent` requirer, it reads its principal unit's databag key `config` with the hook tools
(container scope: `relation-list` shows it its own principal only) and decodes it: JSON with
`metrics_scrape_jobs`, `metrics_alert_rules`, `log_alert_rules`, `dashboards` (each
base64 of xz-compressed JSON, decoded with the standard `lzma` and `base64` modules, as the
library's `LZMABase64.decompress`) and `log_slots`.

Usage:
  collector.py hook OUT.json     a cos-agent-relation-* hook: writes what it decoded to OUT.json
  collector.py scrape IN.json    scrapes every target of the jobs it decoded, as the collector
                                 does from the principal's machine; prints JSON
                                 [{job, url, status, metrics: [names]}] (bounded: 2 s a target)
"""
import base64
import json
import lzma
import os
import subprocess
import sys
import urllib.request

FIELDS = ("metrics_scrape_jobs", "metrics_alert_rules", "log_alert_rules", "dashboards", "log_slots")


def tool(*argv):
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("%s failed: %s" % (" ".join(argv), out.stderr.strip()))
    return out.stdout


def hook(path):
    rid = os.environ["JUJU_RELATION_ID"]
    principals = json.loads(tool("relation-list", "-r", rid, "--format=json"))
    record = {
        "unit": os.environ["JUJU_UNIT_NAME"],
        "machine": os.environ["JUJU_MACHINE_ID"],
        "principal_env": os.environ.get("JUJU_PRINCIPAL_UNIT"),
        "principals": principals,
        "config": None,
        "errors": [],
    }
    if len(principals) == 1:
        raw = json.loads(tool("relation-get", "-r", rid, "--format=json", "config", principals[0]))
        if raw:
            data = json.loads(raw)
            missing = [f for f in FIELDS if f not in data]
            if missing:
                record["errors"].append("config lacks %s" % ", ".join(missing))
            dashboards = []
            for i, encoded in enumerate(data.get("dashboards") or []):
                try:
                    dashboards.append(json.loads(lzma.decompress(base64.b64decode(encoded)).decode("utf-8")))
                except Exception as e:  # what the collector would log and skip
                    record["errors"].append("dashboard %d does not decode: %s" % (i, e))
            data["dashboards"] = dashboards
            record["config"] = data
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def scrape(path):
    with open(path) as f:
        record = json.load(f)
    results = []
    for job in (record.get("config") or {}).get("metrics_scrape_jobs") or []:
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                url = "%s://%s%s" % (job.get("scheme", "http"), target, job.get("metrics_path", "/metrics"))
                result = {"job": job.get("job_name"), "url": url, "status": None, "metrics": []}
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        result["status"] = r.status
                        text = r.read(4 << 20).decode("utf-8", "replace")
                    names = set()
                    for line in text.splitlines():
                        if line and not line.startswith("#"):
                            names.add(line.split("{")[0].split(" ")[0])
                    result["metrics"] = sorted(names)
                except Exception as e:
                    result["error"] = str(e)
                results.append(result)
    sys.stdout.write(json.dumps(results) + "\n")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("hook", "scrape"):
        sys.stderr.write(__doc__)
        return 2
    (hook if sys.argv[1] == "hook" else scrape)(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())

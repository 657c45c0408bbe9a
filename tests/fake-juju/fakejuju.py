"""Fake Juju hook tools and a fake systemd for the Chopsticks simulated-model tests.

One script, many names: the harness (tests/model/mod.rs) symlinks every tool name (config-get,
relation-set, systemctl, ...) to this file in a per-unit bin dir that comes first on PATH, and
the script dispatches on basename(argv[0]).  Invoked as `fake.py admin CMD [JSON]`, it is the
harness's only way to read and change the model, so the state format below is private to it.

All model state is JSON under $FAKE_JUJU_MODEL, guarded by flock(2) on state.lock because the
hooks of several units and the harness touch it:

  state.json        config, units, leader, statuses, ports, relation data, secrets, actions
  staged/ID.json    relation writes of the running hook FAKE_JUJU_HOOK_ID (committed on exit 0)
  calls.log         one JSON line per tool call: {unit, hook, tool, args} (argv only)
  juju-log.txt      juju-log lines

The fake systemd keeps its state under the unit's root prefix $CHOPSTICKS_ROOT:
etc/systemd/system/U (unit files), run/fake-systemd/ (loaded units, U.pid, U.state,
journal.log), run/credentials/U/ (LoadCredential= copies), var/log/U.log (service output).
"""

import fcntl
import json
import os
import re
import sys
import time

# The entry script every tool name is a symlink to.
HERE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "fake.py")

JUJU_TOOLS = (
    "action-fail action-get action-log action-set application-version-set close-port "
    "config-get is-leader juju-log network-get open-port opened-ports relation-get "
    "relation-ids relation-list relation-set secret-add secret-get secret-ids secret-info-get "
    "secret-remove secret-set status-get status-set unit-get"
).split()
# Stand-ins for the machine's own tools, under $CHOPSTICKS_ROOT. A unit that is a booted
# container (the harness's real-systemd mode) gets none of them: it has the real ones.
SYSTEM_TOOLS = "systemctl getent useradd groupadd id chown".split()
TOOLS = JUJU_TOOLS + SYSTEM_TOOLS

STATUSES = ("maintenance", "blocked", "waiting", "active")
ACTION_KEY_SEGMENT = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
RESERVED_ACTION_KEYS = ("stdout", "stderr", "stdout-encoding", "stderr-encoding")
SECRET_KEY = re.compile(r"^[a-z](?:-?[a-z0-9]){2,}$")
SECRET_ALPHABET = "0123456789abcdefghijklmnopqrstuv"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STOP_TIMEOUT_CAP = 30.0


class ToolError(Exception):
    """A tool failure: printed as Juju prints it (`ERROR msg`) and turned into the exit code."""

    def __init__(self, message, code=1, prefix="ERROR "):
        super().__init__(message)
        self.message = message
        self.code = code
        self.prefix = prefix


# --------------------------------------------------------------------------------------------
# Model state
# --------------------------------------------------------------------------------------------


class Model:
    """The JSON model directory. `edit()` and `read()` hold the flock for their whole block."""

    def __init__(self, path):
        self.path = path
        self.state_path = os.path.join(path, "state.json")

    def _lock(self, kind):
        fd = os.open(os.path.join(self.path, "state.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, kind)
        return fd

    def _load(self):
        with open(self.state_path) as f:
            return json.load(f)

    def read(self):
        fd = self._lock(fcntl.LOCK_SH)
        try:
            return self._load()
        finally:
            os.close(fd)

    def edit(self, fn):
        """Runs fn(state) under the exclusive lock, saves the state, returns fn's result."""
        fd = self._lock(fcntl.LOCK_EX)
        try:
            state = self._load() if os.path.exists(self.state_path) else {}
            result = fn(state)
            atomic_write(self.state_path, json.dumps(state, indent=1, sort_keys=True))
            return result
        finally:
            os.close(fd)

    def locked(self, fn):
        """Runs fn() under the exclusive lock without touching state.json."""
        fd = self._lock(fcntl.LOCK_EX)
        try:
            return fn()
        finally:
            os.close(fd)

    def staged_path(self, hook_id):
        return os.path.join(self.path, "staged", re.sub(r"[^A-Za-z0-9_.-]", "_", hook_id) + ".json")

    def read_staged(self, hook_id):
        try:
            with open(self.staged_path(hook_id)) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"relations": {}}


def atomic_write(path, text, mode=0o600):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def model_from_env():
    path = os.environ.get("FAKE_JUJU_MODEL")
    if not path:
        raise ToolError("FAKE_JUJU_MODEL is not set: this fake tool only runs inside the test harness")
    return Model(path)


def unit_number(name):
    try:
        return int(name.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return 1 << 30


def sorted_units(names):
    return sorted(names, key=lambda n: (n.rsplit("/", 1)[0], unit_number(n)))


def merged(base, overlay):
    """Relation data with a staged overlay applied; an empty value deletes the key, as in Juju."""
    out = dict(base)
    for k, v in overlay.items():
        if v == "":
            out.pop(k, None)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# Hook context, argument parsing, output formats
# --------------------------------------------------------------------------------------------


class Ctx:
    def __init__(self, tool, args):
        self.tool = tool
        self.args = args
        self.env = os.environ
        self.unit = os.environ.get("JUJU_UNIT_NAME", "")
        self.app = self.unit.split("/")[0] if self.unit else ""
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = model_from_env()
        return self._model

    def need_unit(self):
        if not self.unit:
            raise ToolError("JUJU_UNIT_NAME is not set: not running in a hook context")

    @property
    def hook_id(self):
        hook_id = self.env.get("FAKE_JUJU_HOOK_ID")
        if not hook_id:
            raise ToolError("FAKE_JUJU_HOOK_ID is not set: not running in a hook context")
        return hook_id

    @property
    def action_id(self):
        action_id = self.env.get("JUJU_ACTION_UUID")
        if not action_id:
            raise ToolError("not running an action")
        return action_id


def flags(*specs):
    """flags("format=", "r|relation=", "app") -> {"format": ("format", True), ...}."""
    table = {}
    for spec in specs:
        takes = spec.endswith("=")
        names = spec.rstrip("=").split("|")
        for n in names:
            table[n] = (names[-1], takes)
    return table


def parse(argv, table):
    """Go gnuflag style: -x V, --xx V, --xx=V, flags interspersed with positionals, `--` ends."""
    opts, pos = {}, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            pos.extend(argv[i + 1 :])
            break
        if a.startswith("-") and a != "-" and not re.match(r"^-\d", a):
            name, eq, val = a.lstrip("-").partition("=")
            if name not in table:
                raise ToolError("flag provided but not defined: %s" % a.split("=")[0], 2)
            canon, takes = table[name]
            if takes:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise ToolError("flag needs an argument: %s" % a, 2)
                    val = argv[i]
                opts[canon] = val
            else:
                opts[canon] = val.lower() not in ("false", "0") if eq else True
        else:
            pos.append(a)
        i += 1
    return opts, pos


def check_format(opts, allowed=("smart", "yaml", "json")):
    fmt = opts.get("format", "smart")
    if fmt not in allowed:
        raise ToolError('invalid value "%s" for flag --format: unknown format "%s"' % (fmt, fmt), 2)
    return fmt


YAML_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9 _./:@+=,-]*$")
YAML_SPECIAL = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    s = str(v)
    if (
        YAML_PLAIN.match(s)
        and not s.endswith((" ", ":"))
        and ": " not in s
        and s.lower() not in YAML_SPECIAL
        and not re.match(r"^[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?$", s)
    ):
        return s
    if "\n" not in s:
        return "'" + s.replace("'", "''") + "'"
    return json.dumps(s)


def yaml_dump(v, indent=0):
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            return pad + "{}\n"
        out = ""
        for k in sorted(v):
            val = v[k]
            if isinstance(val, (dict, list)) and val:
                out += "%s%s:\n%s" % (pad, yaml_scalar(k), yaml_dump(val, indent + 2))
            else:
                out += "%s%s: %s\n" % (pad, yaml_scalar(k), yaml_scalar(val) if not isinstance(val, (dict, list)) else json.dumps(val))
        return out
    if isinstance(v, list):
        if not v:
            return pad + "[]\n"
        out = ""
        for item in v:
            if isinstance(item, (dict, list)) and item:
                body = yaml_dump(item, indent + 2)
                out += pad + "- " + body.lstrip(" ")
            else:
                out += "%s- %s\n" % (pad, yaml_scalar(item))
        return out
    return pad + yaml_scalar(v) + "\n"


def emit(value, fmt):
    """Prints like juju/cmd: json, yaml, or smart (bare scalars, True/False, YAML for maps)."""
    if fmt == "json":
        sys.stdout.write(json.dumps(value) + "\n")
    elif fmt == "yaml":
        sys.stdout.write(yaml_dump(value))
    else:
        if value is None:
            return
        if isinstance(value, bool):
            sys.stdout.write(("True" if value else "False") + "\n")
        elif isinstance(value, (dict, list)):
            sys.stdout.write(yaml_dump(value))
        else:
            sys.stdout.write(str(value) + "\n")


def parse_flat_yaml(text, what):
    """The flat `key: value` YAML maps that --file takes (quoted or plain scalars, `|` blocks)."""
    out = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#") or line.strip() == "---":
            continue
        m = re.match(r"^([^\s:#][^:]*):(?:\s+(.*))?$", line)
        if not m or line.startswith(" "):
            raise ToolError("cannot parse %s: only a flat YAML map of key: value is supported, got %r" % (what, line))
        key, raw = m.group(1).strip(), (m.group(2) or "").strip()
        if raw in ("|", "|-", ">", ">-"):
            block = []
            while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
                block.append(lines[i])
                i += 1
            ind = min((len(b) - len(b.lstrip(" ")) for b in block if b.strip()), default=0)
            body = [b[ind:] for b in block]
            while body and not body[-1].strip():
                body.pop()
            sep = "\n" if raw.startswith("|") else " "
            val = sep.join(body) + ("" if raw.endswith("-") else "\n")
        elif raw.startswith('"'):
            val = json.loads(raw)
        elif raw.startswith("'"):
            if not raw.endswith("'") or len(raw) < 2:
                raise ToolError("cannot parse %s: unterminated quote for key %r" % (what, key))
            val = raw[1:-1].replace("''", "'")
        else:
            val = raw.split(" #")[0].strip()
        out[key] = val
    return out


def kv_args(args, err_fmt):
    out = {}
    for a in args:
        if "=" not in a:
            raise ToolError(err_fmt % a)
        k, v = a.split("=", 1)
        out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# Juju hook tools
# --------------------------------------------------------------------------------------------


def effective_config(state, include_unset=False):
    cfg = {}
    for name, opt in state.get("config_options", {}).items():
        if name in state.get("config", {}):
            cfg[name] = state["config"][name]
        elif opt.get("default") is not None:
            cfg[name] = opt["default"]
        elif include_unset:
            cfg[name] = None
    return cfg


def t_config_get(ctx):
    opts, pos = parse(ctx.args, flags("format=", "a|all"))
    fmt = check_format(opts)
    state = ctx.model.read()
    cfg = effective_config(state, include_unset=opts.get("all", False))
    if len(pos) > 1:
        raise ToolError('unrecognized args: ["%s"]' % '" "'.join(pos[1:]))
    if pos:
        emit(cfg.get(pos[0]), fmt)
    else:
        emit(cfg, fmt)


def is_leader(state, unit):
    return state.get("leader") == unit


def t_is_leader(ctx):
    opts, pos = parse(ctx.args, flags("format="))
    fmt = check_format(opts)
    ctx.need_unit()
    emit(is_leader(ctx.model.read(), ctx.unit), fmt)


def t_status_set(ctx):
    opts, pos = parse(ctx.args, flags("application"))
    ctx.need_unit()
    if not pos:
        raise ToolError("invalid args, require <status> [message] [data]")
    status = pos[0]
    if status not in STATUSES:
        raise ToolError('invalid status "%s", expected one of [%s]' % (status, " ".join(STATUSES)))
    if len(pos) > 2:
        raise ToolError('unrecognized args: ["%s"]' % '" "'.join(pos[2:]))
    message = pos[1] if len(pos) > 1 else ""

    def apply(state):
        entry = {"status": status, "message": message, "time": time.time()}
        if opts.get("application"):
            if not is_leader(state, ctx.unit):
                raise ToolError("setting application status: this unit is not the leader")
            state["app_status"] = entry
            state.setdefault("app_status_history", []).append(entry)
        else:
            u = state["units"][ctx.unit]
            u["status"] = entry
            u.setdefault("status_history", []).append(entry)
            del u["status_history"][:-500]

    ctx.model.edit(apply)


def t_status_get(ctx):
    opts, pos = parse(ctx.args, flags("format=", "include-data", "application"))
    fmt = check_format(opts)
    ctx.need_unit()
    state = ctx.model.read()
    if opts.get("application"):
        if not is_leader(state, ctx.unit):
            raise ToolError("finding application status: this unit is not the leader")
        entry = state.get("app_status") or {"status": "unknown", "message": ""}
        emit({"application-status": {"status": entry["status"], "message": entry["message"], "status-data": {}}}, fmt)
        return
    entry = state["units"][ctx.unit].get("status") or {"status": "unknown", "message": ""}
    if opts.get("include-data") or fmt == "json":
        emit({"status": entry["status"], "message": entry["message"], "status-data": {}}, fmt)
    else:
        emit(entry["status"], fmt)


def t_application_version_set(ctx):
    _, pos = parse(ctx.args, {})
    ctx.need_unit()
    if len(pos) != 1:
        raise ToolError("no version specified" if not pos else 'unrecognized args: ["%s"]' % '" "'.join(pos[1:]))

    def apply(state):
        state["app_version"] = pos[0]

    ctx.model.edit(apply)


def t_juju_log(ctx):
    opts, pos = parse(ctx.args, flags("l|log-level=", "debug", "format="))
    if not pos:
        raise ToolError("no message specified")
    level = "DEBUG" if opts.get("debug") else opts.get("log-level", "INFO").upper()
    if level not in ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ToolError('invalid log level "%s"' % level)
    line = "%s %s %s: %s\n" % (time.strftime("%H:%M:%S"), ctx.unit or "-", level, " ".join(pos))
    path = os.path.join(ctx.model.path, "juju-log.txt")
    ctx.model.locked(lambda: open(path, "a").write(line))


PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp))?$|^icmp$")


def normalize_port(arg):
    m = PORT_RE.match(arg)
    if not m:
        raise ToolError('invalid port "%s"' % arg, 2)
    if arg == "icmp":
        return "icmp"
    lo, hi, proto = int(m.group(1)), m.group(2), m.group(3) or "tcp"
    if not 1 <= lo <= 65535 or (hi and not lo <= int(hi) <= 65535):
        raise ToolError('port range bounds must be between 1 and 65535, got "%s"' % arg)
    return "%d%s/%s" % (lo, "-" + hi if hi and int(hi) != lo else "", proto)


def t_ports(ctx, opening):
    _, pos = parse(ctx.args, flags("endpoints=", "format="))
    ctx.need_unit()
    if len(pos) != 1:
        raise ToolError("no port or range specified" if not pos else 'unrecognized args: ["%s"]' % '" "'.join(pos[1:]))
    port = normalize_port(pos[0])

    def apply(state):
        ports = set(state["units"][ctx.unit].get("ports", []))
        (ports.add if opening else ports.discard)(port)
        state["units"][ctx.unit]["ports"] = sorted(ports)

    ctx.model.edit(apply)


def t_opened_ports(ctx):
    opts, _ = parse(ctx.args, flags("format=", "endpoints"))
    fmt = check_format(opts)
    ctx.need_unit()
    ports = ctx.model.read()["units"][ctx.unit].get("ports", [])
    if fmt == "json":
        emit(ports, fmt)
    else:
        for p in ports:
            print(p)


def t_unit_get(ctx):
    opts, pos = parse(ctx.args, flags("format="))
    fmt = check_format(opts)
    ctx.need_unit()
    if pos not in (["private-address"], ["public-address"]):
        raise ToolError("unknown setting")
    emit(ctx.model.read()["units"][ctx.unit]["address"], fmt)


# ---- actions ---------------------------------------------------------------------------------


def nested_get(d, dotted):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def t_action_get(ctx):
    opts, pos = parse(ctx.args, flags("format="))
    fmt = check_format(opts)
    action_id = ctx.action_id
    params = ctx.model.read()["actions"][action_id]["params"]
    if len(pos) > 1:
        raise ToolError('unrecognized args: ["%s"]' % '" "'.join(pos[1:]))
    emit(nested_get(params, pos[0]) if pos else params, fmt)


def t_action_set(ctx):
    _, pos = parse(ctx.args, {})
    action_id = ctx.action_id
    if not pos:
        raise ToolError("no key=value pairs specified")
    updates = []
    for arg in pos:
        if "=" not in arg:
            raise ToolError('argument "%s" must be of the form key...=value' % arg)
        key, value = arg.split("=", 1)
        if not all(ACTION_KEY_SEGMENT.match(seg) for seg in key.split(".")):
            raise ToolError(
                'key "%s" must start and end with lowercase alphanumeric, and contain only '
                "lowercase alphanumeric, hyphens and periods" % key
            )
        if key in RESERVED_ACTION_KEYS:
            raise ToolError('cannot set reserved action key "%s"' % key)
        updates.append((key, value))

    def apply(state):
        results = state["actions"][action_id]["results"]
        for key, value in updates:
            parts = key.split(".")
            d = results
            for part in parts[:-1]:
                if not isinstance(d.get(part), dict):
                    d[part] = {}
                d = d[part]
            d[parts[-1]] = value

    ctx.model.edit(apply)


def t_action_fail(ctx):
    _, pos = parse(ctx.args, {})
    action_id = ctx.action_id
    if len(pos) > 1:
        raise ToolError('unrecognized args: ["%s"]' % '" "'.join(pos[1:]))
    message = pos[0] if pos else "action failed without reason given."

    def apply(state):
        state["actions"][action_id]["failed"] = True
        state["actions"][action_id]["message"] = message

    ctx.model.edit(apply)


def t_action_log(ctx):
    _, pos = parse(ctx.args, {})
    action_id = ctx.action_id
    if not pos:
        raise ToolError("no message specified")

    def apply(state):
        state["actions"][action_id]["log"].append(" ".join(pos))

    ctx.model.edit(apply)


# ---- relations -------------------------------------------------------------------------------


def relation_id(ctx, opts, state):
    rid = opts.get("relation") or ctx.env.get("JUJU_RELATION_ID")
    if not rid:
        raise ToolError("no relation id specified", 2)
    if re.match(r"^\d+$", rid):
        rid = next((r for r in state["relations"] if r.endswith(":" + rid)), rid)
    rel = state.get("relations", {}).get(rid)
    if rel is None or not in_relation(ctx.unit, rel):
        raise ToolError('invalid value "%s" for option -r: relation not found' % rid, 2)
    return rid, rel


def in_relation(unit, rel):
    """`unit` is in the relation: one of ours (or departing), or a subordinate unit of a
    container-scoped relation, whose hook tools the fake collector runs."""
    if unit in rel["units"] or unit in rel.get("departing", []):
        return True
    return rel.get("scope") == "container" and unit in rel.get("principals", {})


def container_peers(rel, unit):
    """In a container-scoped relation a unit sees only the unit on its own machine: a
    principal its subordinate, a subordinate its principal."""
    principals = rel.get("principals", {})
    if unit in principals:
        return [principals[unit]] if principals[unit] in rel["units"] else []
    return sorted_units(u for u, p in principals.items() if p == unit and u in rel.get("remote_units", []))


def t_relation_ids(ctx):
    opts, pos = parse(ctx.args, flags("format="))
    fmt = check_format(opts)
    ctx.need_unit()
    name = pos[0] if pos else ctx.env.get("JUJU_RELATION")
    if not name:
        raise ToolError("no endpoint name specified", 2)
    state = ctx.model.read()
    ids = [
        rid
        for rid, rel in sorted(state.get("relations", {}).items())
        if rel["name"] == name and in_relation(ctx.unit, rel)
    ]
    if fmt == "json":
        emit(ids, fmt)
    else:
        for rid in ids:
            print(rid)


def t_relation_list(ctx):
    opts, pos = parse(ctx.args, flags("r|relation=", "format=", "app"))
    fmt = check_format(opts)
    ctx.need_unit()
    state = ctx.model.read()
    rid, rel = relation_id(ctx, opts, state)
    subordinate = ctx.unit in rel.get("principals", {})
    if opts.get("app"):
        emit(state["app"] if subordinate else rel.get("remote_app", ctx.app), fmt)
        return
    # A departing unit (relation-departed/-broken on it) no longer sees anyone.
    if ctx.unit in rel.get("departing", []):
        others = []
    elif rel.get("scope") == "container":
        others = container_peers(rel, ctx.unit)
    elif "remote_app" in rel:
        others = sorted_units(rel.get("remote_units", []))
    else:
        others = sorted_units(u for u in rel["units"] if u != ctx.unit)
    if fmt == "json":
        emit(others, fmt)
    else:
        for u in others:
            print(u)


def t_relation_get(ctx):
    opts, pos = parse(ctx.args, flags("r|relation=", "format=", "app"))
    fmt = check_format(opts)
    ctx.need_unit()
    if len(pos) > 2:
        raise ToolError('unrecognized args: ["%s"]' % '" "'.join(pos[2:]))
    key = pos[0] if pos else "-"
    target = pos[1] if len(pos) > 1 else None
    state = ctx.model.read()
    rid, rel = relation_id(ctx, opts, state)
    staged = ctx.model.read_staged(ctx.env.get("FAKE_JUJU_HOOK_ID", "")).get("relations", {}).get(rid, {})
    subordinate = ctx.unit in rel.get("principals", {})
    if subordinate:
        # The subordinate's side: its own unit databag, its principal's, the two app databags.
        if opts.get("app"):
            app = (target or ctx.env.get("JUJU_REMOTE_APP") or state["app"]).split("/")[0]
            if app == state["app"]:
                data = rel.get("app", {})
            elif app == ctx.app:
                data = rel.get("remote_app_data", {})
            else:
                raise ToolError('cannot read application settings for "%s" in relation "%s"' % (app, rid))
        else:
            target = target or ctx.env.get("JUJU_REMOTE_UNIT")
            if not target:
                raise ToolError("no unit id specified", 2)
            if target != ctx.unit and target not in container_peers(rel, ctx.unit):
                raise ToolError('cannot read settings for unit "%s" in relation "%s": unit "%s": settings not found' % (target, rid, target))
            data = rel["data"].get(target, {})
        emit(data if key == "-" else data.get(key), fmt)
        return
    if opts.get("app"):
        app = (target or ctx.env.get("JUJU_REMOTE_APP") or ctx.app).split("/")[0]
        if app == ctx.app:
            # Outside a peer relation only the leader may read its own application's databag.
            if "remote_app" in rel and not is_leader(state, ctx.unit):
                raise ToolError("permission denied")
            data = merged(rel.get("app", {}), staged.get("app", {}))
        elif app == rel.get("remote_app"):
            data = rel.get("remote_app_data", {})
        else:
            raise ToolError('cannot read application settings for "%s" in relation "%s"' % (app, rid))
    else:
        target = target or ctx.env.get("JUJU_REMOTE_UNIT")
        if not target:
            raise ToolError("no unit id specified", 2)
        if target == ctx.unit:
            data = merged(rel["data"].get(target, {}), staged.get("unit", {}))
        elif rel.get("scope") == "container" and target not in container_peers(rel, ctx.unit):
            raise ToolError('cannot read settings for unit "%s" in relation "%s": unit "%s": settings not found' % (target, rid, target))
        elif target in rel["units"] or target in rel.get("remote_units", []):
            data = rel["data"].get(target, {})
        else:
            raise ToolError('cannot read settings for unit "%s" in relation "%s": unit "%s": settings not found' % (target, rid, target))
    emit(data if key == "-" else data.get(key), fmt)


def t_relation_set(ctx):
    opts, pos = parse(ctx.args, flags("r|relation=", "format=", "app", "file="))
    ctx.need_unit()
    values = {}
    if "file" in opts:
        text = sys.stdin.read() if opts["file"] == "-" else open(opts["file"]).read()
        values.update(parse_flat_yaml(text, "relation settings file"))
    values.update(kv_args(pos, 'expected "key=value", got "%s"'))
    model = ctx.model
    hook_id = ctx.hook_id

    def apply(state):
        rid, _ = relation_id(ctx, opts, state)
        if opts.get("app") and not is_leader(state, ctx.unit):
            raise ToolError("cannot write relation settings: unit is not the leader")
        staged = model.read_staged(hook_id)
        staged["unit"] = ctx.unit
        bag = staged.setdefault("relations", {}).setdefault(rid, {}).setdefault("app" if opts.get("app") else "unit", {})
        bag.update(values)
        os.makedirs(os.path.dirname(model.staged_path(hook_id)), exist_ok=True)
        atomic_write(model.staged_path(hook_id), json.dumps(staged, indent=1, sort_keys=True))

    model.edit(apply)


def t_network_get(ctx):
    opts, pos = parse(
        ctx.args,
        flags("format=", "ingress-address", "bind-address", "egress-subnets", "primary-address", "r|relation="),
    )
    fmt = check_format(opts)
    ctx.need_unit()
    if len(pos) != 1:
        raise ToolError("no endpoint specified" if not pos else 'unrecognized args: ["%s"]' % '" "'.join(pos[1:]), 2)
    state = ctx.model.read()
    if pos[0] not in state.get("bindings", []):
        raise ToolError('no network config found for binding "%s"' % pos[0])
    ip = state["units"][ctx.unit]["address"]
    interface = state["units"][ctx.unit].get("interface", "lo")
    cidr = state["units"][ctx.unit].get("cidr", "127.0.0.0/8")
    info = {
        "bind-addresses": [
            {
                "mac-address": "",
                "interface-name": interface,
                "addresses": [{"hostname": "", "value": ip, "cidr": cidr, "address": ip}],
            }
        ],
        "egress-subnets": [ip + "/32"],
        "ingress-addresses": [ip],
    }
    picked = [k for k in ("ingress-address", "bind-address", "egress-subnets", "primary-address") if opts.get(k)]
    single = {"ingress-address": ip, "bind-address": ip, "primary-address": ip, "egress-subnets": [ip + "/32"]}
    if len(picked) == 1:
        emit(single[picked[0]], fmt)
    elif picked:
        emit({k: single[k] for k in picked}, fmt)
    else:
        emit(info, fmt)


# ---- secrets ---------------------------------------------------------------------------------


def new_secret_id():
    import random

    rng = random.SystemRandom()
    return "secret:" + "".join(rng.choice(SECRET_ALPHABET) for _ in range(20))


def secret_content_args(opts, pos):
    content = {}
    if opts.get("file"):
        with open(opts["file"]) as f:
            content.update(parse_flat_yaml(f.read(), "secret content file"))
    for arg in pos:
        if "=" not in arg:
            raise ToolError('expected "key=value", got "%s"' % arg)
        key, value = arg.split("=", 1)
        if key.endswith("#file"):
            key = key[: -len("#file")]
            with open(value) as f:
                value = f.read()
        content[key] = value
    for key in content:
        base = key[: -len("#base64")] if key.endswith("#base64") else key
        if not SECRET_KEY.match(base):
            raise ToolError('key "%s" not valid' % base)
    if not content:
        raise ToolError("missing secret value or filename")
    return content


def owner_of(ctx, secret):
    """True if this unit owns the secret (units of the owning app own app secrets)."""
    owner = secret["owner"]
    return owner == "application:" + ctx.app or owner == "unit:" + ctx.unit


def can_manage(ctx, state, secret):
    owner = secret["owner"]
    if owner == "unit:" + ctx.unit:
        return True
    return owner == "application:" + ctx.app and is_leader(state, ctx.unit)


def find_secret(ctx, state, ident, label):
    secrets = state.setdefault("secrets", {})
    if ident:
        sid = ident if ident.startswith("secret:") else "secret:" + ident
        sid = "secret:" + sid.split("/")[-1].split(":")[-1]
        if sid not in secrets:
            raise ToolError('secret "%s" not found' % sid.split(":", 1)[1])
        return sid
    if label:
        for sid, s in secrets.items():
            if owner_of(ctx, s) and s.get("label") == label:
                return sid
            if s.get("consumers", {}).get(ctx.unit, {}).get("label") == label:
                return sid
        raise ToolError('secret "%s" not found' % label)
    raise ToolError("require either a secret URI or label", 2)


def t_secret_add(ctx):
    opts, pos = parse(ctx.args, flags("owner=", "label=", "description=", "expire=", "rotate=", "file="))
    ctx.need_unit()
    owner = opts.get("owner", "application")
    if owner not in ("application", "unit"):
        raise ToolError('secret owner "%s" not valid' % owner)
    content = secret_content_args(opts, pos)

    def apply(state):
        if owner == "application" and not is_leader(state, ctx.unit):
            raise ToolError("permission denied")
        owner_tag = ("application:" + ctx.app) if owner == "application" else ("unit:" + ctx.unit)
        label = opts.get("label")
        for s in state.setdefault("secrets", {}).values():
            if label and s["owner"] == owner_tag and s.get("label") == label:
                raise ToolError('secret with label "%s" already exists' % label)
        sid = new_secret_id()
        state["secrets"][sid] = {
            "owner": owner_tag,
            "label": label,
            "description": opts.get("description", ""),
            "revisions": [content],
            "consumers": {},
            "created_by": ctx.unit,
        }
        return sid

    print(ctx.model.edit(apply))


def t_secret_get(ctx):
    opts, pos = parse(ctx.args, flags("format=", "label=", "o|output=", "peek", "refresh"))
    fmt = check_format(opts, ("smart", "yaml", "json"))
    ctx.need_unit()
    if len(pos) > 2:
        raise ToolError('unrecognized args: ["%s"]' % '" "'.join(pos[2:]))
    ident = pos[0] if pos else None
    key = pos[1] if len(pos) > 1 else None

    def apply(state):
        sid = find_secret(ctx, state, ident, opts.get("label") if not ident else None)
        secret = state["secrets"][sid]
        latest = len(secret["revisions"])
        if owner_of(ctx, secret):
            revision = latest
            if ident and opts.get("label") and can_manage(ctx, state, secret):
                secret["label"] = opts["label"]
        else:
            if secret["owner"] == "user" and not secret.get("granted"):
                raise ToolError("permission denied")
            granted_app = ctx.app in secret.get("granted_apps", [])
            if secret["owner"].startswith("unit:") or (
                secret["owner"].startswith("application:")
                and secret["owner"] != "application:" + ctx.app
                and not granted_app
            ):
                raise ToolError("permission denied")
            consumer = secret["consumers"].setdefault(ctx.unit, {})
            if ident and opts.get("label"):
                consumer["label"] = opts["label"]
            if "revision" not in consumer or opts.get("refresh"):
                consumer["revision"] = latest
                consumer["notified"] = latest
            revision = latest if opts.get("peek") else consumer["revision"]
        return secret["revisions"][revision - 1]

    content = ctx.model.edit(apply)
    if key:
        b64 = key.endswith("#base64")
        base = key[: -len("#base64")] if b64 else key
        value = content.get(base)
        if value is None:
            raise ToolError('secret key "%s" not found' % base)
        if b64:
            import base64

            value = base64.b64encode(value.encode()).decode()
        out = value
    else:
        out = content
    if opts.get("output"):
        with open(opts["output"], "w") as f:
            f.write(json.dumps(out) if fmt == "json" else (out if isinstance(out, str) else yaml_dump(out)))
        return
    if fmt == "json":
        emit(out, "json")
    elif isinstance(out, str):
        sys.stdout.write(yaml_scalar(out) + "\n")
    else:
        sys.stdout.write(yaml_dump(out))


def t_secret_set(ctx):
    opts, pos = parse(ctx.args, flags("owner=", "label=", "description=", "expire=", "rotate=", "file="))
    ctx.need_unit()
    if not pos:
        raise ToolError("missing secret URI", 2)
    ident, rest = pos[0], pos[1:]
    content = secret_content_args(opts, rest) if (rest or opts.get("file")) else None

    def apply(state):
        sid = find_secret(ctx, state, ident, None)
        secret = state["secrets"][sid]
        if not can_manage(ctx, state, secret):
            raise ToolError("permission denied")
        if content is not None and content != secret["revisions"][-1]:
            secret["revisions"].append(content)
        if "label" in opts:
            secret["label"] = opts["label"]
        if "description" in opts:
            secret["description"] = opts["description"]

    ctx.model.edit(apply)


def t_secret_remove(ctx):
    opts, pos = parse(ctx.args, flags("revision="))
    ctx.need_unit()
    if len(pos) != 1:
        raise ToolError("missing secret URI", 2)

    def apply(state):
        sid = find_secret(ctx, state, pos[0], None)
        if not can_manage(ctx, state, state["secrets"][sid]):
            raise ToolError("permission denied")
        del state["secrets"][sid]

    ctx.model.edit(apply)


def t_secret_ids(ctx):
    opts, _ = parse(ctx.args, flags("format="))
    fmt = check_format(opts)
    ctx.need_unit()
    state = ctx.model.read()
    ids = sorted(sid for sid, s in state.get("secrets", {}).items() if owner_of(ctx, s))
    if fmt == "json":
        emit(ids, fmt)
    else:
        for sid in ids:
            print(sid)


def t_secret_info_get(ctx):
    opts, pos = parse(ctx.args, flags("format=", "label="))
    fmt = check_format(opts)
    ctx.need_unit()
    state = ctx.model.read()
    sid = find_secret(ctx, state, pos[0] if pos else None, opts.get("label"))
    secret = state["secrets"][sid]
    if not owner_of(ctx, secret):
        raise ToolError("permission denied")
    info = {
        "revision": len(secret["revisions"]),
        "label": secret.get("label") or "",
        "owner": secret["owner"].split(":")[0],
        "rotation": "never",
    }
    emit({sid.split(":", 1)[1]: info}, fmt)


# --------------------------------------------------------------------------------------------
# Users and groups (per-root passwd and group files)
# --------------------------------------------------------------------------------------------


def root_prefix():
    root = os.environ.get("CHOPSTICKS_ROOT")
    if not root:
        raise ToolError("CHOPSTICKS_ROOT is not set: the fakes never touch the real system", 1, "fake: ")
    return root


def db_path(db):
    return os.path.join(root_prefix(), "etc", db)


def db_entries(db):
    try:
        with open(db_path(db)) as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip()]
    except FileNotFoundError:
        return []


def db_find(db, key):
    for e in db_entries(db):
        if e[0] == key or (key.isdigit() and e[2] == key):
            return e
    return None


def db_add(db, fields):
    os.makedirs(os.path.dirname(db_path(db)), exist_ok=True)
    with open(db_path(db), "a") as f:
        f.write(":".join(fields) + "\n")


def t_getent(ctx):
    args = [a for a in ctx.args if not a.startswith("-")]
    if not args:
        raise ToolError("Usage: getent [OPTION...] database [key ...]", 1, "")
    db, keys = args[0], args[1:]
    if db not in ("passwd", "group"):
        real = find_real("getent")
        os.execv(real, [real] + ctx.args)
    if not keys:
        for e in db_entries(db):
            print(":".join(e))
        return
    found = False
    for key in keys:
        e = db_find(db, key)
        if e:
            print(":".join(e))
            found = True
    if not found:
        sys.exit(2)


def t_groupadd(ctx):
    opts, pos = parse(ctx.args, flags("r|system", "f|force", "g|gid="))
    if len(pos) != 1:
        raise ToolError("Usage: groupadd [options] GROUP", 2, "")
    name = pos[0]
    if db_find("group", name):
        if opts.get("force"):
            return
        raise ToolError("groupadd: group '%s' already exists" % name, 9, "")
    db_add("group", [name, "x", str(os.getgid()), ""])


def t_useradd(ctx):
    opts, pos = parse(
        ctx.args,
        flags(
            "r|system", "M|no-create-home", "m|create-home", "d|home-dir|home=", "s|shell=",
            "g|gid=", "U|user-group", "N|no-user-group", "c|comment=", "u|uid=", "G|groups=",
        ),
    )
    if len(pos) != 1:
        raise ToolError("Usage: useradd [options] LOGIN", 2, "")
    name = pos[0]
    if db_find("passwd", name):
        raise ToolError("useradd: user '%s' already exists" % name, 9, "")
    if "gid" in opts:
        if not db_find("group", opts["gid"]):
            raise ToolError("useradd: group '%s' does not exist" % opts["gid"], 6, "")
    elif not opts.get("no-user-group"):
        # Debian's USERGROUPS_ENAB: a group named like the user, which must not exist yet.
        if db_find("group", name):
            raise ToolError(
                "useradd: group %s exists - if you want to add this user to that group, use -g." % name, 9, ""
            )
        db_add("group", [name, "x", str(os.getgid()), ""])
    home = opts.get("home-dir", "/nonexistent" if opts.get("system") else "/home/" + name)
    shell = opts.get("shell", "/usr/sbin/nologin" if opts.get("system") else "/bin/sh")
    db_add("passwd", [name, "x", str(os.getuid()), str(os.getgid()), opts.get("comment", ""), home, shell])


def lookup_id(db, name):
    if name.isdigit():
        return int(name)
    e = db_find(db, name)
    if e is None:
        return None
    return int(e[2])


def t_id(ctx):
    opts, pos = parse(ctx.args, flags("u|user", "g|group", "n|name"))
    if not pos:
        real = find_real("id")
        os.execv(real, [real] + ctx.args)
    e = db_find("passwd", pos[0])
    if e is None:
        raise ToolError("id: '%s': no such user" % pos[0], 1, "")
    if opts.get("user"):
        print(e[0] if opts.get("name") else e[2])
    elif opts.get("group"):
        print(e[3])
    else:
        print("uid=%s(%s) gid=%s" % (e[2], e[0], e[3]))


def t_chown(ctx):
    opts, pos = parse(ctx.args, flags("R|recursive", "h|no-dereference", "v|verbose", "c|changes", "f|silent|quiet"))
    if len(pos) < 2:
        raise ToolError("chown: missing operand", 1, "")
    spec, paths = pos[0], pos[1:]
    user, _, group = spec.partition(":")
    uid = lookup_id("passwd", user) if user else -1
    gid = lookup_id("group", group) if group else -1
    if uid is None:
        raise ToolError("chown: invalid user: '%s'" % spec, 1, "")
    if gid is None:
        raise ToolError("chown: invalid group: '%s'" % spec, 1, "")
    for p in paths:
        targets = [p]
        if opts.get("recursive") and os.path.isdir(p):
            for base, dirs, files in os.walk(p):
                targets += [os.path.join(base, n) for n in dirs + files]
        for t in targets:
            os.lchown(t, uid, gid)


def find_real(tool):
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    for d in os.environ.get("PATH", "").split(os.pathsep):
        cand = os.path.join(d, tool)
        if os.path.abspath(d) != here and os.access(cand, os.X_OK) and os.path.realpath(cand) != HERE:
            return cand
    raise ToolError("%s: not found" % tool, 127, "")


# --------------------------------------------------------------------------------------------
# Fake systemd
# --------------------------------------------------------------------------------------------


def parse_unit_file(text):
    """systemd unit syntax: sections, repeated keys, `Key=` resets a list, backslash continuations."""
    sections = {}
    current = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if value == "":
            current[key] = []
        else:
            current.setdefault(key, []).append(value)
    return sections


def duration_secs(value, default):
    if value is None:
        return default
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)\s*(ms|min|s|m|h|us)?", value):
        total += float(num) * {"ms": 0.001, "us": 1e-6, "s": 1, "": 1, None: 1, "min": 60, "m": 60, "h": 3600}[unit or ""]
    return total


class Systemd:
    """One unit root's fake systemd."""

    def __init__(self, root):
        self.root = root
        self.unit_dir = os.path.join(root, "etc", "systemd", "system")
        self.state_dir = os.path.join(root, "run", "fake-systemd")
        self.loaded_dir = os.path.join(self.state_dir, "loaded")
        self.log_dir = os.path.join(root, "var", "log")
        for d in (self.state_dir, self.loaded_dir, self.log_dir):
            os.makedirs(d, exist_ok=True)

    def unit_file(self, unit):
        return os.path.join(self.unit_dir, unit)

    def creds_dir(self, unit):
        return os.path.join(self.root, "run", "credentials", unit)

    def pid_file(self, unit):
        return os.path.join(self.state_dir, unit + ".pid")

    def state_file(self, unit):
        return os.path.join(self.state_dir, unit + ".state")

    def journal(self, message):
        with open(os.path.join(self.state_dir, "journal.log"), "a") as f:
            f.write("%s %s\n" % (time.strftime("%H:%M:%S"), message))

    # -- loading --

    def daemon_reload(self):
        on_disk = {n for n in os.listdir(self.unit_dir) if os.path.isfile(self.unit_file(n))} if os.path.isdir(self.unit_dir) else set()
        for name in os.listdir(self.loaded_dir):
            if name not in on_disk and not self.is_running(name):
                os.unlink(os.path.join(self.loaded_dir, name))
        for name in on_disk:
            with open(self.unit_file(name)) as f:
                atomic_write(os.path.join(self.loaded_dir, name), f.read())

    def load(self, unit):
        """The unit as systemd knows it: the copy taken at the last daemon-reload, else the file."""
        loaded = os.path.join(self.loaded_dir, unit)
        disk = self.unit_file(unit)
        if os.path.exists(loaded):
            with open(loaded) as f:
                text = f.read()
            if os.path.exists(disk):
                with open(disk) as f:
                    if f.read() != text:
                        sys.stderr.write(
                            "Warning: The unit file, source configuration file or drop-ins of %s changed on "
                            "disk. Run 'systemctl daemon-reload' to reload units.\n" % unit
                        )
            return parse_unit_file(text)
        if os.path.exists(disk):
            with open(disk) as f:
                text = f.read()
            atomic_write(loaded, text)
            return parse_unit_file(text)
        return None

    # -- process state --

    def read_json(self, path):
        try:
            with open(path) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def supervisor(self, unit):
        info = self.read_json(self.pid_file(unit))
        if info and proc_alive(info["pid"], info.get("start")):
            return info["pid"]
        return None

    def is_running(self, unit):
        return self.supervisor(unit) is not None

    def active_state(self, unit):
        st = self.read_json(self.state_file(unit)) or {}
        if self.is_running(unit):
            return st.get("active", "active"), st
        if st.get("active") == "failed":
            return "failed", st
        return "inactive", st

    def units_known(self):
        names = set(os.listdir(self.loaded_dir))
        if os.path.isdir(self.unit_dir):
            names |= {n for n in os.listdir(self.unit_dir) if os.path.isfile(self.unit_file(n))}
        names |= {n[: -len(".pid")] for n in os.listdir(self.state_dir) if n.endswith(".pid")}
        return sorted(names)

    # -- verbs --

    def start(self, unit):
        if self.is_running(unit):
            return 0
        spec = self.load(unit)
        if spec is None:
            sys.stderr.write("Failed to start %s: Unit %s not found.\n" % (unit, unit))
            return 5
        service = spec.get("Service", {})
        if not service.get("ExecStart"):
            sys.stderr.write("Failed to start %s: Unit %s has a bad unit file setting.\n" % (unit, unit))
            return 1
        record_unit(self, unit, spec)
        for cred in service.get("LoadCredential", []):
            _, _, path = cred.partition(":")
            if not os.path.isfile(path):
                self.journal("%s: Failed to set up credentials: %s: No such file or directory" % (unit, path))
                atomic_write(self.state_file(unit), json.dumps({"active": "failed", "result": "credentials", "exit": 243}))
                sys.stderr.write(
                    'Job for %s failed because the control process exited with error code.\nSee "systemctl status %s" '
                    'and "journalctl -xeu %s" for details.\n' % (unit, unit, unit)
                )
                return 1
        for f in (self.state_file(unit), self.pid_file(unit)):
            if os.path.exists(f):
                os.unlink(f)
        import subprocess

        subprocess.Popen(
            [sys.executable, "-SE", HERE, "__supervise", self.root, unit],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = self.read_json(self.state_file(unit))
            if st and st.get("active") in ("active", "failed", "inactive", "activating"):
                return 0
            time.sleep(0.01)
        sys.stderr.write("Job for %s timed out.\n" % unit)
        return 1

    def stop(self, unit):
        if self.load(unit) is None and not os.path.exists(self.pid_file(unit)):
            sys.stderr.write("Failed to stop %s: Unit %s not loaded.\n" % (unit, unit))
            return 5
        info = self.read_json(self.pid_file(unit))
        if info and proc_alive(info["pid"], info.get("start")):
            spec = self.load(unit) or {}
            timeout = min(duration_secs((spec.get("Service", {}).get("TimeoutStopSec") or [None])[-1], 90.0), STOP_TIMEOUT_CAP)
            kill_group(info["pid"], timeout)
        self.cleanup(unit)
        st = self.read_json(self.state_file(unit)) or {}
        if st.get("active") != "failed":
            atomic_write(self.state_file(unit), json.dumps({"active": "inactive", "result": "success"}))
        return 0

    def cleanup(self, unit):
        import shutil

        shutil.rmtree(self.creds_dir(unit), ignore_errors=True)
        if os.path.exists(self.pid_file(unit)):
            os.unlink(self.pid_file(unit))

    def wants_links(self, unit):
        out = []
        if os.path.isdir(self.unit_dir):
            for d in os.listdir(self.unit_dir):
                link = os.path.join(self.unit_dir, d, unit)
                if d.endswith(".wants") and os.path.lexists(link):
                    out.append(link)
        return out

    def enable(self, unit):
        spec = self.load(unit) if os.path.exists(self.unit_file(unit)) else None
        if spec is None:
            sys.stderr.write("Failed to enable unit: Unit file %s does not exist.\n" % unit)
            return 1
        targets = [t for v in spec.get("Install", {}).get("WantedBy", []) for t in v.split()]
        if not targets:
            sys.stderr.write("The unit files have no installation config (WantedBy=, RequiredBy=, ...).\n")
        for t in targets:
            d = os.path.join(self.unit_dir, t + ".wants")
            os.makedirs(d, exist_ok=True)
            link = os.path.join(d, unit)
            if not os.path.lexists(link):
                os.symlink(self.unit_file(unit), link)
                sys.stderr.write("Created symlink %s → %s.\n" % (link, self.unit_file(unit)))
        return 0

    def disable(self, unit):
        if not os.path.exists(self.unit_file(unit)) and not self.wants_links(unit):
            sys.stderr.write("Failed to disable unit: Unit file %s does not exist.\n" % unit)
            return 1
        for link in self.wants_links(unit):
            os.unlink(link)
            sys.stderr.write("Removed \"%s\".\n" % link)
        return 0

    def is_enabled(self, unit):
        if self.wants_links(unit):
            return "enabled", 0
        if not os.path.exists(self.unit_file(unit)):
            sys.stderr.write("Failed to get unit file state for %s: No such file or directory\n" % unit)
            return None, 1
        return "disabled", 1


def proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(")") + 2 :].split()
    return rest  # rest[0] = state, rest[2] = pgrp, rest[19] = starttime


def proc_alive(pid, start=None):
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start is None or st[19] == str(start)


def group_members(pgid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[2] == str(pgid) and st[0] not in ("Z", "X"):
                out.append(int(name))
    return out


def kill_group(pgid, timeout):
    """SIGTERM the process group, wait up to `timeout` for it to go, then SIGKILL it."""
    import signal

    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


HARDENING_KEYS = (
    "User", "Group", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "ReadWritePaths", "PrivateTmp",
    "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
    "RestrictAddressFamilies", "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute",
    "RestrictRealtime", "SystemCallFilter", "CapabilityBoundingSet", "AmbientCapabilities",
    "StateDirectory", "LogsDirectory", "DynamicUser", "UMask", "ProtectClock", "ProtectHostname",
    "ProtectKernelLogs", "RestrictSUIDSGID", "RemoveIPC", "PrivateUsers", "SystemCallArchitectures",
)


def record_unit(sd, unit, spec):
    """Notes in the model what was started with which (ignored) User=/hardening directives."""
    path = os.environ.get("FAKE_JUJU_MODEL")
    if not path:
        return
    service = spec.get("Service", {})
    owner = os.environ.get("JUJU_UNIT_NAME") or sd.root

    def apply(state):
        units = state.setdefault("systemd", {}).setdefault(owner, {})
        entry = units.setdefault(unit, {"starts": 0})
        entry["starts"] += 1
        entry["exec_start"] = service.get("ExecStart", [])[-1]
        entry["hardening"] = {k: service[k] for k in HARDENING_KEYS if k in service}
        entry["load_credential"] = service.get("LoadCredential", [])
        entry["environment"] = service.get("Environment", [])

    Model(path).edit(apply)


def expand_specifiers(s, unit, creds):
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "%" and i + 1 < len(s):
            spec = s[i + 1]
            i += 2
            if spec == "%":
                out.append("%")
            elif spec == "d":
                out.append(creds)
            elif spec == "n":
                out.append(unit)
            elif spec == "N":
                out.append(unit.rsplit(".", 1)[0])
            elif spec == "p":
                out.append(unit.split("@")[0].rsplit(".", 1)[0])
            elif spec == "i":
                out.append(unit.split("@", 1)[1].rsplit(".", 1)[0] if "@" in unit else "")
            else:
                raise ToolError("unsupported specifier %%%s in %s" % (spec, unit))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def expand_env(word, env):
    """systemd's ExecStart substitution: `$FOO` as a whole word, `${FOO}` anywhere, `$$` -> `$`."""
    m = re.match(r"^\$(\w+)$", word)
    if m:
        return env.get(m.group(1), "")
    return re.sub(r"\$\$|\$\{(\w+)\}", lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), ""), word)


def supervise(root, unit):
    """The detached process behind a started unit: runs ExecStart, restarts it per Restart=."""
    import collections
    import shlex
    import shutil
    import signal
    import subprocess

    sd = Systemd(root)
    st = proc_stat(os.getpid())
    atomic_write(sd.pid_file(unit), json.dumps({"pid": os.getpid(), "start": st[19] if st else None}))
    stopping = []

    def on_term(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    spec = sd.load(unit)
    service = spec.get("Service", {})
    unit_sec = spec.get("Unit", {})

    def last(key, default=None):
        vals = service.get(key)
        return vals[-1] if vals else default

    creds = sd.creds_dir(unit)
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "INVOCATION_ID": os.urandom(16).hex()}
    user = last("User")
    if user:
        entry = None
        try:
            for e in db_entries_at(root, "passwd"):
                if e[0] == user:
                    entry = e
        except OSError:
            pass
        if entry:
            env.update({"USER": user, "LOGNAME": user, "HOME": entry[5], "SHELL": entry[6]})
    for ef in service.get("EnvironmentFile", []):
        optional = ef.startswith("-")
        try:
            with open(ef.lstrip("-")) as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#") and "=" in line:
                        k, v = line.split("=", 1)
                        env[k.strip()] = v.strip().strip('"')
        except FileNotFoundError:
            if not optional:
                raise
    for assignment in service.get("Environment", []):
        for word in shlex.split(assignment):
            if "=" in word:
                k, v = word.split("=", 1)
                env[k] = expand_specifiers(v, unit, creds)
    if service.get("LoadCredential"):
        env["CREDENTIALS_DIRECTORY"] = creds
    cmdline = last("ExecStart").lstrip("-@+!:")
    argv = [expand_env(expand_specifiers(w, unit, creds), env) for w in shlex.split(cmdline)]
    cwd = last("WorkingDirectory", "/")
    cwd = cwd.lstrip("-") if cwd != "~" else env.get("HOME", "/")
    restart = last("Restart", "no")
    restart_sec = duration_secs(last("RestartSec"), 1.0)
    burst = int((unit_sec.get("StartLimitBurst") or service.get("StartLimitBurst") or ["5"])[-1])
    interval = duration_secs(
        (unit_sec.get("StartLimitIntervalSec") or service.get("StartLimitIntervalSec") or [None])[-1], 10.0
    )
    log_path = os.path.join(sd.log_dir, unit + ".log")
    starts = collections.deque()
    restarts = 0

    def set_state(**kw):
        kw["restarts"] = restarts
        atomic_write(sd.state_file(unit), json.dumps(kw))

    final = {"active": "inactive", "result": "success"}
    while not stopping:
        now = time.monotonic()
        starts.append(now)
        while starts and now - starts[0] > interval:
            starts.popleft()
        if burst > 0 and len(starts) > burst:
            sd.journal("%s: Start request repeated too quickly." % unit)
            final = {"active": "failed", "result": "start-limit-hit"}
            break
        shutil.rmtree(creds, ignore_errors=True)
        if service.get("LoadCredential"):
            os.makedirs(creds, mode=0o700, exist_ok=True)
            try:
                for cred in service["LoadCredential"]:
                    cid, _, path = cred.partition(":")
                    dest = os.path.join(creds, cid)
                    shutil.copyfile(path, dest)
                    os.chmod(dest, 0o400)
            except OSError as e:
                sd.journal("%s: Failed to set up credentials: %s" % (unit, e))
                final = {"active": "failed", "result": "credentials", "exit": 243}
                break
            os.chmod(creds, 0o500)
        with open(log_path, "ab") as log:
            try:
                child = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            except OSError as e:
                log.write(("%s: Failed to execute %s: %s\n" % (unit, argv[0] if argv else "", e.strerror)).encode())
                code = 203
            else:
                set_state(active="active", sub="running", main_pid=child.pid)
                sd.journal("Started %s (pid %d)." % (unit, child.pid))
                code = child.wait()
        if stopping:
            break
        sd.journal("%s: Main process exited, status=%s" % (unit, code))
        failed = code != 0
        if restart == "always" or (restart == "on-failure" and failed) or (restart == "on-abnormal" and code < 0):
            set_state(active="activating", sub="auto-restart", last_exit=code)
            deadline = time.monotonic() + restart_sec
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.02)
            restarts += 1
            continue
        final = {"active": "failed", "result": "exit-code", "exit": code} if failed else {"active": "inactive", "result": "success"}
        break
    shutil.rmtree(creds, ignore_errors=True)
    final["restarts"] = restarts
    atomic_write(sd.state_file(unit), json.dumps(final))
    try:
        os.unlink(sd.pid_file(unit))
    except FileNotFoundError:
        pass


def db_entries_at(root, db):
    with open(os.path.join(root, "etc", db)) as f:
        return [line.rstrip("\n").split(":") for line in f if line.strip()]


def t_systemctl(ctx):
    words = []
    opts = {}
    for a in ctx.args:
        if a in ("--now",):
            opts["now"] = True
        elif a in ("--value",):
            opts["value"] = True
        elif a.startswith("-p") or a.startswith("--property"):
            opts["property"] = a.split("=", 1)[1] if "=" in a else (a[2:] or None)
            if opts["property"] is None:
                opts["property_next"] = True
        elif a in ("-q", "--quiet"):
            opts["quiet"] = True
        elif a.startswith("-"):
            continue  # --no-block, --no-pager, --system ...
        elif opts.pop("property_next", False):
            opts["property"] = a
        else:
            words.append(a)
    if not words:
        raise ToolError("systemctl: no command given", 1, "")
    verb, units = words[0], [u if "." in u else u + ".service" for u in words[1:]]
    sd = Systemd(root_prefix())
    rc = 0
    if verb == "daemon-reload":
        sd.daemon_reload()
    elif verb in ("start", "stop", "restart", "try-restart", "reload-or-restart", "enable", "disable", "reset-failed"):
        if not units and verb != "reset-failed":
            raise ToolError("Too few arguments.", 1, "")
        for u in units:
            if verb == "start":
                rc = rc or sd.start(u)
            elif verb == "stop":
                rc = rc or sd.stop(u)
            elif verb in ("restart", "reload-or-restart"):
                if sd.load(u) is None:
                    sys.stderr.write("Failed to restart %s: Unit %s not found.\n" % (u, u))
                    rc = rc or 5
                    continue
                sd.stop(u)
                rc = rc or sd.start(u)
            elif verb == "try-restart":
                if sd.is_running(u):
                    sd.stop(u)
                    rc = rc or sd.start(u)
            elif verb == "enable":
                rc = rc or sd.enable(u)
                if opts.get("now") and rc == 0:
                    rc = sd.start(u)
            elif verb == "disable":
                rc = rc or sd.disable(u)
                if opts.get("now"):
                    if sd.load(u) is not None or os.path.exists(sd.pid_file(u)):
                        sd.stop(u)
            elif verb == "reset-failed":
                if not sd.is_running(u) and os.path.exists(sd.state_file(u)):
                    os.unlink(sd.state_file(u))
    elif verb == "is-active":
        for u in units:
            state, _ = sd.active_state(u)
            if not opts.get("quiet"):
                print(state)
            if state != "active":
                rc = 3
    elif verb == "is-failed":
        for u in units:
            state, _ = sd.active_state(u)
            if not opts.get("quiet"):
                print(state)
            rc = 0 if state == "failed" else 1
    elif verb == "is-enabled":
        for u in units:
            state, code = sd.is_enabled(u)
            if state and not opts.get("quiet"):
                print(state)
            rc = rc or code
    elif verb in ("show", "status"):
        for u in units:
            state, st = sd.active_state(u)
            props = {
                "Id": u,
                "ActiveState": state,
                "SubState": st.get("sub", "running" if state == "active" else ("failed" if state == "failed" else "dead")),
                "MainPID": str(st.get("main_pid", 0) if state in ("active", "activating") else 0),
                "NRestarts": str(st.get("restarts", 0)),
                "Result": st.get("result", "success"),
                "UnitFileState": sd.is_enabled(u)[0] or "",
                "LoadState": "loaded" if sd.load(u) is not None else "not-found",
            }
            if verb == "status":
                print("● %s\n     Loaded: %s\n     Active: %s (%s)\n   Main PID: %s" % (u, props["LoadState"], state, props["SubState"], props["MainPID"]))
                rc = rc or (0 if state == "active" else 3)
                continue
            wanted = opts.get("property")
            keys = wanted.split(",") if wanted else list(props)
            for k in keys:
                print(props.get(k, "") if opts.get("value") else "%s=%s" % (k, props.get(k, "")))
    elif verb == "list-units":
        for u in sd.units_known():
            state, _ = sd.active_state(u)
            print("%s loaded %s" % (u, state))
    else:
        raise ToolError('Unknown command verb %s.' % verb, 1, "")
    sys.exit(rc)


# --------------------------------------------------------------------------------------------
# Harness side: `fake.py admin CMD [JSON]`
# --------------------------------------------------------------------------------------------


def unit_view(state, unit):
    """What `unit` can see of every peer relation: the other units' databags and the app's."""
    view = {}
    for rid, rel in state.get("relations", {}).items():
        if unit not in rel["units"]:
            continue
        if "remote_app" in rel:
            # Another application: its units' databags and its application databag (in a
            # container-scoped relation, only the subordinate on this unit's machine).
            visible = container_peers(rel, unit) if rel.get("scope") == "container" else rel.get("remote_units", [])
            view[rid] = {
                "units": {u: rel["data"].get(u, {}) for u in visible},
                "app": rel.get("remote_app_data", {}),
                "remote_app": rel["remote_app"],
            }
        else:
            view[rid] = {
                "units": {u: rel["data"].get(u, {}) for u in rel["units"] if u != unit},
                "app": rel.get("app", {}),
                "remote_app": state["app"],
            }
    return view


def admin_init(model, arg):
    os.makedirs(os.path.join(model.path, "staged"), exist_ok=True)

    def apply(state):
        state.clear()
        state.update(
            {
                "model": arg["model"],
                "app": arg["app"],
                "charm_dir": arg["charm_dir"],
                "config_options": arg["config_options"],
                "bindings": arg.get("bindings", []),
                "config": {},
                "units": {},
                "leader": None,
                "relations": {},
                "seen": {},
                "secrets": {},
                "actions": {},
                "next_action": 1,
                "next_relation": 0,
                "app_version": "",
                "app_status": None,
            }
        )

    model.edit(apply)
    return {}


def admin_add_unit(model, arg):
    unit = arg["unit"]
    os.makedirs(arg["bin"], exist_ok=True)
    for tool in TOOLS if arg.get("system_tools", True) else JUJU_TOOLS:
        link = os.path.join(arg["bin"], tool)
        if not os.path.lexists(link):
            os.symlink(HERE, link)
    os.makedirs(arg["root"], exist_ok=True)

    def apply(state):
        state["units"][unit] = {"address": arg["address"], "root": arg["root"], "status": None, "ports": []}
        if arg.get("interface"):
            # A unit with its own network interface (real-systemd mode), not a loopback alias.
            state["units"][unit]["interface"] = arg["interface"]
            state["units"][unit]["cidr"] = arg["cidr"]
        state["seen"][unit] = {}
        for rel in state["relations"].values():
            if (rel["name"] in arg.get("peers", []) or "remote_app" in rel) and unit not in rel["units"]:
                rel["units"].append(unit)

    model.edit(apply)
    return {}


def admin_remove_unit(model, arg):
    unit = arg["unit"]

    def apply(state):
        state["units"].pop(unit, None)
        state["seen"].pop(unit, None)
        for rel in state["relations"].values():
            if unit in rel["units"]:
                rel["units"].remove(unit)
            if unit in rel.get("departing", []):
                rel["departing"].remove(unit)
            rel["data"].pop(unit, None)
        for seen in state["seen"].values():
            for rv in seen.values():
                rv.get("units", {}).pop(unit, None)
        if state.get("leader") == unit:
            state["leader"] = None

    model.edit(apply)
    return {}


def admin_leave_relations(model, arg):
    """The departing unit leaves every relation: others stop seeing it; it sees no one."""
    unit = arg["unit"]

    def apply(state):
        for rel in state["relations"].values():
            if unit in rel["units"]:
                rel["units"].remove(unit)
                rel.setdefault("departing", []).append(unit)
            rel["data"].pop(unit, None)

    model.edit(apply)
    return {}


def admin_add_relation(model, arg):
    """A peer relation, or (with remote_app) a relation between our endpoint `name` and another
    application whose units `remote_units` the test scripts (their databags are set by admin)."""

    def apply(state):
        rid = "%s:%d" % (arg["name"], state["next_relation"])
        state["next_relation"] += 1
        rel = {"name": arg["name"], "units": list(arg["units"]), "data": {}, "app": {}}
        if arg.get("remote_app"):
            rel.update(
                {
                    "remote_app": arg["remote_app"],
                    "remote_endpoint": arg.get("remote_endpoint", arg["name"]),
                    "remote_units": list(arg.get("remote_units", [])),
                    "remote_app_data": {},
                }
            )
            if arg.get("principals"):
                # A subordinate application: container scope, one unit per principal unit,
                # on that unit's machine.
                rel["scope"] = "container"
                rel["principals"] = dict(arg["principals"])
        state["relations"][rid] = rel
        return rid

    return {"id": model.edit(apply)}


def admin_set_remote_data(model, arg):
    """The scripted remote application writes its app databag (`app`: true) or a unit's; an
    empty value deletes the key, as in Juju."""

    def apply(state):
        rel = state["relations"][arg["relation"]]
        if arg.get("unit"):
            if arg["unit"] not in rel.get("remote_units", []):
                raise ToolError("unit %s is not in relation %s" % (arg["unit"], arg["relation"]))
            rel["data"][arg["unit"]] = merged(rel["data"].get(arg["unit"], {}), arg["data"])
        else:
            rel["remote_app_data"] = merged(rel.get("remote_app_data", {}), arg["data"])

    model.edit(apply)
    return {}


def admin_remote_depart(model, arg):
    """The remote units leave (before relation-departed/-broken on our units)."""

    def apply(state):
        rel = state["relations"][arg["relation"]]
        for u in rel.get("remote_units", []):
            rel["data"].pop(u, None)
        rel["remote_units"] = []

    model.edit(apply)
    return {}


def admin_remove_relation(model, arg):
    def apply(state):
        state["relations"].pop(arg["relation"], None)
        for seen in state["seen"].values():
            seen.pop(arg["relation"], None)

    model.edit(apply)
    return {}


def admin_add_app_secret(model, arg):
    """A secret owned by another application, granted to `granted_apps` (as `secret-grant
    --relation` does for the applications of a relation)."""

    def apply(state):
        sid = new_secret_id()
        state["secrets"][sid] = {
            "owner": "application:" + arg["owner_app"],
            "label": arg.get("label"),
            "description": "",
            "revisions": [arg["content"]],
            "consumers": {},
            "granted_apps": list(arg.get("granted_apps", [])),
        }
        return sid

    return {"id": model.edit(apply)}


def admin_remove_secret(model, arg):
    """The owning application's `secret-remove URI` (every revision): the secret is gone, so a
    consumer's next `secret-get` fails with Juju's `secret "ID" not found`. Consumers get no
    hook for it; they notice on their next one."""

    def apply(state):
        if state["secrets"].pop(arg["id"], None) is None:
            raise ToolError('secret "%s" not found' % arg["id"].split(":", 1)[-1])

    model.edit(apply)
    return {}


def admin_set_config(model, arg):
    def apply(state):
        before = effective_config(state)
        for k, v in arg.get("values", {}).items():
            state["config"][k] = v
        for k in arg.get("reset", []):
            state["config"].pop(k, None)
        return effective_config(state) != before

    return {"changed": model.edit(apply)}


def admin_set_leader(model, arg):
    def apply(state):
        old = state.get("leader")
        state["leader"] = arg["unit"]
        return old

    return {"previous": model.edit(apply)}


def admin_commit(model, arg):
    """Makes a finished hook's staged relation writes visible (exit 0) or drops them."""
    hook_id = arg["hook_id"]
    path = model.staged_path(hook_id)

    def apply(state):
        staged = model.read_staged(hook_id)
        if arg.get("ok"):
            writer = staged.get("unit")
            for rid, bags in staged.get("relations", {}).items():
                rel = state["relations"].get(rid)
                if rel is None:
                    continue
                if "unit" in bags and writer in rel["units"]:
                    rel["data"][writer] = merged(rel["data"].get(writer, {}), bags["unit"])
                if "app" in bags:
                    rel["app"] = merged(rel.get("app", {}), bags["app"])
                    # The writer knows what it wrote: no relation-changed back to it (in a
                    # cross-app relation its own side is never told of its app databag).
                    if "remote_app" not in rel:
                        state["seen"].setdefault(writer, {}).setdefault(rid, {})["app"] = rel["app"]
        if os.path.exists(path):
            os.unlink(path)

    model.edit(apply)
    return {}


def admin_pending(model, arg):
    """Hooks Juju would fire now: relation-changed for changed data, secret-changed for new revisions."""
    state = model.read()
    out = []
    for unit in sorted_units(state["units"]):
        view = unit_view(state, unit)
        seen = state["seen"].get(unit, {})
        for rid, v in sorted(view.items()):
            s = seen.get(rid, {})
            for other in sorted_units(v["units"]):
                if other in s.get("units", {}) and s["units"][other] != v["units"][other]:
                    out.append({"unit": unit, "kind": "relation-changed", "relation": rid, "remote_unit": other})
            if s.get("app", {}) != v["app"]:
                out.append({"unit": unit, "kind": "relation-changed", "relation": rid, "remote_unit": None})
        for item in out:
            if item.get("unit") == unit and "relation" in item and "remote_app" not in item:
                item["remote_app"] = view.get(item["relation"], {}).get("remote_app")
        for sid, secret in sorted(state.get("secrets", {}).items()):
            c = secret.get("consumers", {}).get(unit)
            if c and "revision" in c and c.get("notified", 0) < len(secret["revisions"]):
                out.append({"unit": unit, "kind": "secret-changed", "secret": sid, "label": c.get("label")})
    # Subordinate units (the fake collector): relation-changed when their principal's unit
    # databag changed since they were last told.
    for rid, rel in sorted(state.get("relations", {}).items()):
        for sub, principal in sorted(rel.get("principals", {}).items()):
            if sub not in rel.get("remote_units", []) or principal not in rel["units"]:
                continue
            s = state["seen"].get(sub, {}).get(rid, {}).get("units", {})
            if principal in s and s[principal] != rel["data"].get(principal, {}):
                out.append({"unit": sub, "kind": "relation-changed", "relation": rid, "remote_unit": principal, "subordinate": True, "remote_app": state["app"]})
    return {"pending": out}


def admin_mark_seen(model, arg):
    """Records what `unit` was shown by a relation-joined/changed hook about to run."""
    unit, rid, remote = arg["unit"], arg["relation"], arg.get("remote_unit")

    def apply(state):
        rel = state["relations"].get(rid)
        if rel is None:
            return
        seen = state["seen"].setdefault(unit, {}).setdefault(rid, {"units": {}, "app": {}})
        seen.setdefault("units", {})
        if remote:
            seen["units"][remote] = rel["data"].get(remote, {})
        if arg.get("app", not remote):
            seen["app"] = rel.get("remote_app_data", {}) if "remote_app" in rel else rel.get("app", {})

    model.edit(apply)
    return {}


def admin_forget_seen(model, arg):
    def apply(state):
        seen = state["seen"].get(arg["unit"], {}).get(arg["relation"], {})
        seen.get("units", {}).pop(arg["remote_unit"], None)

    model.edit(apply)
    return {}


def admin_forget_seen_all(model, arg):
    """`unit` forgets what it was shown of relation `relation` (it is leaving)."""

    def apply(state):
        state["seen"].get(arg["unit"], {}).pop(arg["relation"], None)

    model.edit(apply)
    return {}


def admin_secret_notified(model, arg):
    def apply(state):
        secret = state["secrets"].get(arg["secret"])
        if secret and arg["unit"] in secret["consumers"]:
            secret["consumers"][arg["unit"]]["notified"] = len(secret["revisions"])

    model.edit(apply)
    return {}


def admin_add_user_secret(model, arg):
    def apply(state):
        sid = new_secret_id()
        state["secrets"][sid] = {
            "owner": "user",
            "label": arg.get("label"),
            "description": "",
            "revisions": [arg["content"]],
            "consumers": {},
            "granted": False,
        }
        return sid

    return {"id": model.edit(apply)}


def admin_grant_secret(model, arg):
    def apply(state):
        state["secrets"][arg["id"]]["granted"] = arg.get("granted", True)

    model.edit(apply)
    return {}


def admin_update_user_secret(model, arg):
    def apply(state):
        state["secrets"][arg["id"]]["revisions"].append(arg["content"])

    model.edit(apply)
    return {}


def admin_begin_action(model, arg):
    def apply(state):
        aid = str(state["next_action"])
        state["next_action"] += 1
        state["actions"][aid] = {
            "unit": arg["unit"],
            "name": arg["name"],
            "params": arg["params"],
            "results": {},
            "failed": False,
            "message": "",
            "log": [],
        }
        return aid

    return {"id": model.edit(apply)}


def admin_state(model, arg):
    return model.read()


def admin_stop_all(model, arg):
    """Stops every fake-systemd service of a unit root (used on unit removal and harness drop)."""
    root = arg["root"]
    stopped = []
    if not os.path.isdir(os.path.join(root, "run", "fake-systemd")):
        return {"stopped": stopped}
    sd = Systemd(root)
    for name in os.listdir(sd.state_dir):
        if name.endswith(".pid"):
            unit = name[: -len(".pid")]
            info = sd.read_json(sd.pid_file(unit))
            if info and proc_alive(info["pid"], info.get("start")):
                kill_group(info["pid"], arg.get("timeout", 10))
                stopped.append(unit)
            sd.cleanup(unit)
    return {"stopped": stopped}


def admin_unpack(model, arg):
    """Unzips a .charm keeping the zip's unix modes (Juju does: `dispatch` must stay 0755)."""
    import zipfile

    dest = arg["dest"]
    with zipfile.ZipFile(arg["zip"]) as z:
        for info in z.infolist():
            path = z.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o7777
            if mode:
                os.chmod(path, mode)
    return {}


ADMIN = {
    "init": admin_init,
    "add-unit": admin_add_unit,
    "remove-unit": admin_remove_unit,
    "leave-relations": admin_leave_relations,
    "add-relation": admin_add_relation,
    "set-remote-data": admin_set_remote_data,
    "remote-depart": admin_remote_depart,
    "remove-relation": admin_remove_relation,
    "add-app-secret": admin_add_app_secret,
    "remove-secret": admin_remove_secret,
    "set-config": admin_set_config,
    "set-leader": admin_set_leader,
    "commit": admin_commit,
    "pending": admin_pending,
    "mark-seen": admin_mark_seen,
    "forget-seen": admin_forget_seen,
    "forget-seen-all": admin_forget_seen_all,
    "secret-notified": admin_secret_notified,
    "add-user-secret": admin_add_user_secret,
    "grant-secret": admin_grant_secret,
    "update-user-secret": admin_update_user_secret,
    "begin-action": admin_begin_action,
    "state": admin_state,
    "stop-all": admin_stop_all,
    "unpack": admin_unpack,
}


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

HANDLERS = {
    "config-get": t_config_get,
    "is-leader": t_is_leader,
    "status-set": t_status_set,
    "status-get": t_status_get,
    "application-version-set": t_application_version_set,
    "juju-log": t_juju_log,
    "open-port": lambda ctx: t_ports(ctx, True),
    "close-port": lambda ctx: t_ports(ctx, False),
    "opened-ports": t_opened_ports,
    "unit-get": t_unit_get,
    "action-get": t_action_get,
    "action-set": t_action_set,
    "action-fail": t_action_fail,
    "action-log": t_action_log,
    "relation-ids": t_relation_ids,
    "relation-list": t_relation_list,
    "relation-get": t_relation_get,
    "relation-set": t_relation_set,
    "network-get": t_network_get,
    "secret-add": t_secret_add,
    "secret-get": t_secret_get,
    "secret-set": t_secret_set,
    "secret-remove": t_secret_remove,
    "secret-ids": t_secret_ids,
    "secret-info-get": t_secret_info_get,
    "systemctl": t_systemctl,
    "getent": t_getent,
    "useradd": t_useradd,
    "groupadd": t_groupadd,
    "id": t_id,
    "chown": t_chown,
}


def log_call(tool, args):
    path = os.environ.get("FAKE_JUJU_MODEL")
    if not path:
        return
    line = json.dumps(
        {
            "unit": os.environ.get("JUJU_UNIT_NAME"),
            "hook": os.environ.get("JUJU_DISPATCH_PATH"),
            "tool": tool,
            "args": args,
        }
    )
    model = Model(path)
    model.locked(lambda: open(os.path.join(path, "calls.log"), "a").write(line + "\n"))


def main():
    tool = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    try:
        if tool == "fake.py":
            if args[:1] == ["__supervise"]:
                supervise(args[1], args[2])
                return 0
            if args[:1] == ["admin"] and len(args) >= 2:
                handler = ADMIN.get(args[1])
                if handler is None:
                    raise ToolError("unknown admin command %s" % args[1])
                arg = json.loads(args[2]) if len(args) > 2 else {}
                model = Model(arg.get("model") or os.environ["FAKE_JUJU_MODEL"])
                sys.stdout.write(json.dumps(handler(model, arg)) + "\n")
                return 0
            raise ToolError("usage: fake.py admin CMD [JSON] (tools are symlinks named after them)", 2)
        handler = HANDLERS.get(tool)
        if handler is None:
            raise ToolError("fake.py: unknown tool name %s" % tool, 127)
        log_call(tool, args)
        handler(Ctx(tool, args))
        return 0
    except ToolError as e:
        sys.stderr.write(e.prefix + e.message + "\n")
        return e.code

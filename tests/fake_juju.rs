//! Self-tests of the simulated model (tests/model) and the fake hook tools and systemd
//! (tests/fake-juju/fake.py), with a tiny bash charm made here: its `dispatch` runs
//! `handlers/<hook>` when the test wrote one, and logs every hook it sees.

mod model;

use std::path::{Path, PathBuf};
use std::time::Duration;

use model::{process_gone, wait_for, Model, Result};
use serde_json::{json, Value};

const METADATA: &str = "name: chopsticks\npeers:\n  cluster:\n    interface: chopsticks-peers\n";

const CONFIG: &str = r#"options:
  greeting:
    type: string
    default: hello
    description: a string with a default
  count:
    type: int
    default: 3
    description: an int
  creds:
    type: secret
    description: a user secret with access-key/secret-key
  nodefault:
    type: string
    description: no default, so config-get omits it until set
"#;

const ACTIONS: &str = r#"echo:
  description: returns its params
  params:
    users:
      type: integer
      minimum: 1
      default: 10
    format:
      type: string
      enum: [summary, json, csv]
      default: summary
    rate:
      type: number
  additionalProperties: false
set-key:
  description: action-set KEY=value
  params:
    key:
      type: string
  required: [key]
  additionalProperties: false
fail:
  description: logs, then action-fail
  additionalProperties: false
"#;

const DISPATCH: &str = r#"#!/bin/bash
set -eu
hook="${JUJU_DISPATCH_PATH#*/}"
echo "$hook remote=${JUJU_REMOTE_UNIT:-} secret=${JUJU_SECRET_ID:-}" >> "$CHOPSTICKS_ROOT/hooks.log"
if [ -x "$JUJU_CHARM_DIR/handlers/$hook" ]; then
  exec "$JUJU_CHARM_DIR/handlers/$hook"
fi
"#;

/// Handlers every tiny charm has: the leader publishes itself; config-changed publishes the
/// greeting in the unit databag and sets status.
const BASE_HANDLERS: &[(&str, &str)] = &[
    (
        "leader-elected",
        r#"relation-set -r "$(relation-ids cluster | head -n1)" --app leader="$JUJU_UNIT_NAME""#,
    ),
    (
        "config-changed",
        r#"rid=$(relation-ids cluster | head -n1)
relation-set -r "$rid" greeting="$(config-get greeting)"
status-set active "greeting $(config-get greeting)""#,
    ),
    (
        "echo",
        r#"action-set params="$(action-get --format=json)"
action-set users="$(action-get users)""#,
    ),
    ("set-key", r#"action-set "$(action-get key)=value""#),
    (
        "fail",
        "action-log step one\naction-log step two\naction-fail \"bucket missing: set s3-bucket\"",
    ),
];

fn tiny_charm(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("metadata.yaml"), METADATA).unwrap();
    std::fs::write(p.join("config.yaml"), CONFIG).unwrap();
    std::fs::write(p.join("actions.yaml"), ACTIONS).unwrap();
    write_exec(&p.join("dispatch"), DISPATCH);
    std::fs::create_dir(p.join("handlers")).unwrap();
    for (hook, body) in BASE_HANDLERS.iter().chain(extra) {
        write_exec(
            &p.join("handlers").join(hook),
            &format!("#!/bin/bash\nset -eu\n{body}\n"),
        );
    }
    dir
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn hooks_seen(m: &Model, unit: &str) -> Vec<String> {
    std::fs::read_to_string(m.unit_root(unit).join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn deploy_runs_juju_hook_sequence_and_settles_peer_data() -> Result<()> {
    let charm = tiny_charm(&[]);
    let mut m = Model::new(charm.path())?;
    m.deploy(3)?;
    assert_eq!(m.units(), ["chopsticks/0", "chopsticks/1", "chopsticks/2"]);
    assert_eq!(m.leader()?, "chopsticks/0");
    assert_eq!(m.app_data()?["leader"], "chopsticks/0");
    assert_eq!(m.unit_data("chopsticks/2")?["greeting"], "hello");
    assert_eq!(
        m.status("chopsticks/1")?,
        ("active".into(), "greeting hello".into())
    );
    let hooks: Vec<String> = hooks_seen(&m, "chopsticks/0")
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(
        hooks[..5],
        [
            "install",
            "cluster-relation-created",
            "leader-elected",
            "config-changed",
            "start"
        ]
    );
    let h1 = hooks_seen(&m, "chopsticks/1");
    assert_eq!(h1[2], "leader-settings-changed remote= secret=");
    assert!(h1.contains(&"cluster-relation-joined remote=chopsticks/0 secret=".to_string()));
    assert!(h1.contains(&"cluster-relation-changed remote=chopsticks/2 secret=".to_string()));

    // Each unit sees its own address, the others in the relation, and config with defaults.
    let (_, out, _) = m.run_tool(
        "chopsticks/2",
        &["network-get", "cluster", "--ingress-address"],
    )?;
    assert_eq!(out.trim(), "127.0.0.12");
    let (_, out, _) = m.run_tool(
        "chopsticks/1",
        &["relation-list", "-r", "cluster:0", "--format=json"],
    )?;
    assert_eq!(
        serde_json::from_str::<Value>(&out)?,
        json!(["chopsticks/0", "chopsticks/2"])
    );
    let (_, out, _) = m.run_tool("chopsticks/1", &["config-get", "--format=json"])?;
    assert_eq!(
        serde_json::from_str::<Value>(&out)?,
        json!({"greeting": "hello", "count": 3})
    );
    let (code, _, err) = m.run_tool("chopsticks/1", &["status-set", "error", "x"])?;
    assert_eq!(code, 1);
    assert!(err.contains(r#"invalid status "error""#), "{err}");

    // Config changes run config-changed everywhere and peers hear about new databags.
    m.config(&[("greeting", "bonjour"), ("count", "7")])?;
    assert_eq!(m.unit_data("chopsticks/0")?["greeting"], "bonjour");
    let (_, out, _) = m.run_tool("chopsticks/0", &["config-get", "count", "--format=json"])?;
    assert_eq!(out.trim(), "7");
    assert!(m
        .config(&[("count", "seven")])
        .unwrap_err()
        .to_string()
        .contains("expected int"));
    assert!(m.config(&[("nope", "1")]).is_err());
    let calls = m.calls()?;
    assert!(calls
        .iter()
        .any(|c| c.tool == "status-set" && c.hook.as_deref() == Some("hooks/config-changed")));
    Ok(())
}

#[test]
fn staged_relation_writes_are_visible_to_peers_only_after_exit_0() -> Result<()> {
    // The hook writes, checks what it and a peer see mid-hook, then exits with $EXIT_WITH.
    let stage = r#"rid=$(relation-ids cluster | head -n1)
relation-set -r "$rid" marker="$1"
relation-set -r "$rid" greeting=
relation-get -r "$rid" - "$JUJU_UNIT_NAME" --format=json > "$CHOPSTICKS_ROOT/own-view.json"
JUJU_UNIT_NAME=chopsticks/1 FAKE_JUJU_HOOK_ID=peer relation-get -r "$rid" - "$JUJU_UNIT_NAME" --format=json > "$CHOPSTICKS_ROOT/peer-view.json"
exit "$2""#;
    let charm = tiny_charm(&[
        ("stage-fail", &format!("set -- one 1\n{stage}")),
        ("stage-ok", &format!("set -- two 0\n{stage}")),
    ]);
    let mut m = Model::new(charm.path())?;
    m.deploy(2)?;
    let root = m.unit_root("chopsticks/0");

    let err = m.run_hook("chopsticks/0", "stage-fail").unwrap_err();
    assert!(err.to_string().contains("exit 1"), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&read(root.join("own-view.json")))?,
        json!({"marker": "one"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&read(root.join("peer-view.json")))?,
        json!({"greeting": "hello"})
    );
    assert_eq!(
        m.unit_data("chopsticks/0")?,
        json!({"greeting": "hello"}).as_object().unwrap().clone()
    );

    let before = hooks_seen(&m, "chopsticks/1").len();
    m.run_hook("chopsticks/0", "stage-ok")?;
    assert_eq!(
        serde_json::from_str::<Value>(&read(root.join("peer-view.json")))?,
        json!({"greeting": "hello"}),
        "peers must not see a running hook's writes"
    );
    assert_eq!(
        m.unit_data("chopsticks/0")?,
        json!({"marker": "two"}).as_object().unwrap().clone()
    );
    m.settle()?;
    let after = hooks_seen(&m, "chopsticks/1");
    assert_eq!(
        after[before..],
        ["cluster-relation-changed remote=chopsticks/0 secret="]
    );
    let (_, out, _) = m.run_tool(
        "chopsticks/1",
        &["relation-get", "-r", "cluster:0", "marker", "chopsticks/0"],
    )?;
    assert_eq!(out.trim(), "two");
    Ok(())
}

#[test]
fn only_the_leader_writes_app_data_and_leadership_moves() -> Result<()> {
    let charm = tiny_charm(&[(
        "app-write",
        r#"relation-set -r cluster:0 --app writer="$JUJU_UNIT_NAME""#,
    )]);
    let mut m = Model::new(charm.path())?;
    m.deploy(3)?;
    let err = m
        .run_hook("chopsticks/1", "app-write")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ERROR cannot write relation settings: unit is not the leader"),
        "{err}"
    );
    assert!(!m.app_data()?.contains_key("writer"));
    m.run_hook("chopsticks/0", "app-write")?;
    assert_eq!(m.app_data()?["writer"], "chopsticks/0");
    m.settle()?;
    assert!(
        hooks_seen(&m, "chopsticks/2").contains(&"cluster-relation-changed remote= secret=".into())
    );

    let before: Vec<usize> = m.units().iter().map(|u| hooks_seen(&m, u).len()).collect();
    m.set_leader("chopsticks/2")?;
    assert_eq!(m.leader()?, "chopsticks/2");
    assert_eq!(m.app_data()?["leader"], "chopsticks/2");
    assert_eq!(
        hooks_seen(&m, "chopsticks/0")[before[0]],
        "leader-settings-changed remote= secret="
    );
    assert_eq!(
        hooks_seen(&m, "chopsticks/2")[before[2]],
        "leader-elected remote= secret="
    );
    let (_, out, _) = m.run_tool("chopsticks/2", &["is-leader", "--format=json"])?;
    assert_eq!(out.trim(), "true");

    // Removing the leader elects the lowest remaining unit; the departed unit drops out.
    let root = m.unit_root("chopsticks/2");
    m.remove_unit("chopsticks/2")?;
    assert!(!root.exists());
    assert_eq!(m.leader()?, "chopsticks/0");
    assert!(hooks_seen(&m, "chopsticks/1")
        .contains(&"cluster-relation-departed remote=chopsticks/2 secret=".into()));
    let (_, out, _) = m.run_tool("chopsticks/1", &["relation-list", "-r", "cluster:0"])?;
    assert_eq!(out.trim(), "chopsticks/0");
    let added = m.add_unit()?;
    assert_eq!(added, "chopsticks/3");
    assert_eq!(m.unit_data("chopsticks/3")?["greeting"], "hello");
    assert!(hooks_seen(&m, "chopsticks/0")
        .contains(&"cluster-relation-joined remote=chopsticks/3 secret=".into()));
    Ok(())
}

#[test]
fn action_params_are_validated_and_defaulted_like_juju() -> Result<()> {
    let charm = tiny_charm(&[]);
    let mut m = Model::new(charm.path())?;
    m.deploy(1)?;
    let cases: &[(Value, &str)] = &[
        (
            json!({"bogus": 1}),
            "(root): Additional property bogus is not allowed",
        ),
        (
            json!({"users": 0}),
            "users: Must be greater than or equal to 1",
        ),
        (
            json!({"users": "many"}),
            "users: Invalid type. Expected: integer, given: string",
        ),
        (
            json!({"users": 2.5}),
            "users: Invalid type. Expected: integer, given: number",
        ),
        (
            json!({"format": "xml"}),
            r#"format: format must be one of the following: "summary", "json", "csv""#,
        ),
    ];
    for (params, want) in cases {
        let err = m
            .run_action("chopsticks/0", "echo", params.clone())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ERROR validation failed: ") && err.contains(want),
            "{params}: {err}"
        );
    }
    let err = m
        .run_action("chopsticks/0", "set-key", json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("(root): key is required"), "{err}");
    let err = m
        .run_action("chopsticks/0", "nope", json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains(r#"action "nope" not defined"#), "{err}");
    assert!(!m
        .calls()?
        .iter()
        .any(|c| c.hook.as_deref().is_some_and(|h| h.starts_with("actions/"))));

    let out = m.run_action("chopsticks/0", "echo", json!({}))?;
    assert_eq!(out.status, "completed");
    assert_eq!(
        serde_json::from_str::<Value>(out.get("params").unwrap())?,
        json!({"users": 10, "format": "summary"})
    );
    let out = m.juju_run("chopsticks/leader", "echo users=5 rate=2.5 format=csv")?;
    assert_eq!(
        serde_json::from_str::<Value>(out.get("params").unwrap())?,
        json!({"users": 5, "rate": 2.5, "format": "csv"})
    );
    assert_eq!(out.get("users"), Some("5"));
    Ok(())
}

#[test]
fn action_set_keys_fail_and_log_follow_juju_rules() -> Result<()> {
    let charm = tiny_charm(&[]);
    let mut m = Model::new(charm.path())?;
    m.deploy(1)?;
    let out = m.juju_run("chopsticks/0", "set-key key=run.test-run-id")?;
    assert_eq!(out.status, "completed");
    assert_eq!(
        Value::Object(out.results.clone()),
        json!({"run": {"test-run-id": "value"}})
    );
    for bad in [
        "Bad",
        "under_score",
        "9-",
        "trail-",
        "a..b",
        "stdout",
        "stderr-encoding",
    ] {
        let out = m.run_action("chopsticks/0", "set-key", json!({"key": bad}))?;
        assert_eq!(out.status, "failed", "{bad}");
        assert_eq!(out.message, "exit status 1");
        if bad.starts_with("std") {
            assert!(
                out.stderr
                    .contains(&format!(r#"cannot set reserved action key "{bad}""#)),
                "{}",
                out.stderr
            );
        } else {
            assert!(
                out.stderr.contains(&format!(
                    r#"ERROR key "{bad}" must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric, hyphens and periods"#
                )),
                "{}",
                out.stderr
            );
        }
        assert!(out.results.is_empty());
    }
    let out = m.run_action("chopsticks/0", "fail", json!({}))?;
    assert_eq!(out.status, "failed");
    assert_eq!(out.message, "bucket missing: set s3-bucket");
    assert_eq!(out.log, ["step one", "step two"]);
    Ok(())
}

#[test]
fn secrets_follow_owner_and_grant_rules() -> Result<()> {
    let charm = tiny_charm(&[
        (
            "leader-elected",
            r#"printf 'token: "s3cr3t-token-value"\n' > "$CHOPSTICKS_ROOT/token.yaml"
id=$(secret-add --label cluster-token --file "$CHOPSTICKS_ROOT/token.yaml")
rm "$CHOPSTICKS_ROOT/token.yaml"
relation-set -r cluster:0 --app token-id="$id""#,
        ),
        (
            "read-token",
            r#"secret-get "$(relation-get -r cluster:0 --app token-id chopsticks)" token > "$CHOPSTICKS_ROOT/token""#,
        ),
        ("add-app-secret", "secret-add foo=barbaz"),
        (
            "read-creds",
            r#"secret-get "$(config-get creds)" --format=json > "$CHOPSTICKS_ROOT/creds.json""#,
        ),
        (
            "secret-changed",
            r#"secret-get "$JUJU_SECRET_ID" --refresh --format=json > "$CHOPSTICKS_ROOT/creds.json""#,
        ),
    ]);
    let mut m = Model::new(charm.path())?;
    m.deploy(2)?;
    let id = m.app_data()?["token-id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("secret:") && id.len() == "secret:".len() + 20,
        "{id}"
    );
    m.run_hook("chopsticks/1", "read-token")?;
    assert_eq!(
        read(m.unit_root("chopsticks/1").join("token")).trim(),
        "s3cr3t-token-value"
    );
    let err = m
        .run_hook("chopsticks/1", "add-app-secret")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ERROR permission denied"), "{err}");

    let creds = m.add_user_secret(&[
        ("access-key", "AKIAFAKE"),
        ("secret-key", "very-secret-key"),
    ])?;
    m.config(&[("creds", &creds)])?;
    let err = m
        .run_hook("chopsticks/1", "read-creds")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ERROR permission denied"), "{err}");
    m.grant_secret(&creds)?;
    m.run_hook("chopsticks/1", "read-creds")?;
    let got: Value = serde_json::from_str(&read(m.unit_root("chopsticks/1").join("creds.json")))?;
    assert_eq!(
        got,
        json!({"access-key": "AKIAFAKE", "secret-key": "very-secret-key"})
    );

    // A new revision reaches the consumer as secret-changed.
    m.update_user_secret(
        &creds,
        &[
            ("access-key", "AKIAFAKE2"),
            ("secret-key", "rotated-secret"),
        ],
    )?;
    assert!(
        hooks_seen(&m, "chopsticks/1").contains(&format!("secret-changed remote= secret={creds}"))
    );
    assert!(!hooks_seen(&m, "chopsticks/0")
        .iter()
        .any(|h| h.starts_with("secret-changed")));
    let got: Value = serde_json::from_str(&read(m.unit_root("chopsticks/1").join("creds.json")))?;
    assert_eq!(got["secret-key"], "rotated-secret");

    let leaks = m.leaks(&["s3cr3t-token-value", "very-secret-key", "rotated-secret"])?;
    assert!(leaks.is_empty(), "{leaks:?}");
    Ok(())
}

/// Handlers that install `NAME.service` from `units/NAME.service` in the charm (with @ROOT@
/// replaced by the unit root), then run `systemctl ARGS...` given in the hook name's file.
fn systemd_charm(units: &[(&str, &str)]) -> tempfile::TempDir {
    let charm = tiny_charm(&[
        (
            "install-units",
            r#"mkdir -p "$CHOPSTICKS_ROOT/etc/systemd/system" "$CHOPSTICKS_ROOT/etc/app"
printf 'cred-content-42\n' > "$CHOPSTICKS_ROOT/etc/app/s3.yaml"
for f in "$JUJU_CHARM_DIR"/units/*; do
  sed "s|@ROOT@|$CHOPSTICKS_ROOT|g" "$f" > "$CHOPSTICKS_ROOT/etc/systemd/system/$(basename "$f")"
done
systemctl daemon-reload"#,
        ),
        (
            "start-all",
            r#"for f in "$JUJU_CHARM_DIR"/units/*; do systemctl enable --now "$(basename "$f")"; done"#,
        ),
    ]);
    std::fs::create_dir(charm.path().join("units")).unwrap();
    for (name, text) in units {
        std::fs::write(charm.path().join("units").join(name), text).unwrap();
    }
    charm
}

fn service_state(m: &Model, unit: &str, service: &str) -> Value {
    let path = m
        .unit_root(unit)
        .join("run/fake-systemd")
        .join(format!("{service}.state"));
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn main_pid(m: &Model, unit: &str, service: &str) -> Result<u32> {
    wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let st = service_state(m, unit, service);
        Ok((st["active"] == "active").then(|| st["main_pid"].as_u64().unwrap() as u32))
    })
}

/// The main pid of `service` once it is active after at least `restarts` restarts and its shell
/// has exec'd `sleep` (a freshly forked main process shows `/bin/sh` until then).
fn main_pid_after_restarts(m: &Model, unit: &str, service: &str, restarts: u64) -> Result<u32> {
    wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let st = service_state(m, unit, service);
        if st["active"] != "active" || st["restarts"].as_u64().unwrap_or(0) < restarts {
            return Ok(None);
        }
        let pid = st["main_pid"].as_u64().unwrap() as u32;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        Ok(cmdline.starts_with(b"sleep").then_some(pid))
    })
}

const SLEEPER: &str = "[Unit]
Description=sleeps
[Service]
User=chopsticks
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=/var/lib/chopsticks
LoadCredential=s3:@ROOT@/etc/app/s3.yaml
Environment=\"GREETING=hello world\" MODE=test
WorkingDirectory=@ROOT@
ExecStart=/bin/sh -c 'echo \"$GREETING $MODE $CREDENTIALS_DIRECTORY\"; cat %d/s3; stat -c %%a %d/s3; pwd; exec sleep 300'
[Install]
WantedBy=multi-user.target
";

const FLAKY: &str = "[Service]
ExecStart=/bin/sh -c 'if [ -e @ROOT@/flaky-ran ]; then exec sleep 300; fi; touch @ROOT@/flaky-ran; exit 3'
Restart=on-failure
RestartSec=200ms
[Install]
WantedBy=multi-user.target
";

const STUBBORN: &str = "[Service]
ExecStart=/bin/sh -c 'trap \"\" TERM; sleep 300 & sleep 300 & wait; wait'
TimeoutStopSec=1
[Install]
WantedBy=multi-user.target
";

#[test]
fn fake_systemd_runs_units_with_credentials_and_restarts_on_failure() -> Result<()> {
    let charm = systemd_charm(&[("sleeper.service", SLEEPER), ("flaky.service", FLAKY)]);
    let mut m = Model::new(charm.path())?;
    m.deploy(1)?;
    let u = "chopsticks/0";
    m.run_hook(u, "install-units")?;
    m.run_hook(u, "start-all")?;
    let root = m.unit_root(u);

    let pid = main_pid_after_restarts(&m, u, "sleeper.service", 0)?;
    assert!(read(PathBuf::from(format!("/proc/{pid}/cmdline"))).starts_with("sleep\x00300"));
    let log_path = root.join("var/log/sleeper.service.log");
    let log = wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        Ok((log.lines().count() >= 4).then_some(log))
    })?;
    let creds = root.join("run/credentials/sleeper.service");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            format!("hello world test {}", creds.display()).as_str(),
            "cred-content-42",
            "400",
            root.to_str().unwrap(),
        ]
    );
    let (code, out, _) = m.run_tool(u, &["systemctl", "is-active", "sleeper.service"])?;
    assert_eq!((code, out.trim()), (0, "active"));
    let (_, out, _) = m.run_tool(u, &["systemctl", "is-enabled", "sleeper"])?;
    assert_eq!(out.trim(), "enabled");
    let recorded = &m.systemd_units(u)?["sleeper.service"];
    assert_eq!(recorded["hardening"]["User"], json!(["chopsticks"]));
    assert_eq!(recorded["hardening"]["ProtectSystem"], json!(["strict"]));

    // Exit 3, restarted after RestartSec, then stays up.
    let flaky = main_pid_after_restarts(&m, u, "flaky.service", 1)?;
    assert_eq!(service_state(&m, u, "flaky.service")["restarts"], 1);
    assert!(read(PathBuf::from(format!("/proc/{flaky}/cmdline"))).starts_with("sleep"));
    let (_, out, _) = m.run_tool(
        u,
        &[
            "systemctl",
            "show",
            "-p",
            "NRestarts",
            "--value",
            "flaky.service",
        ],
    )?;
    assert_eq!(out.trim(), "1");

    let (code, _, _) = m.run_tool(u, &["systemctl", "stop", "sleeper.service"])?;
    assert_eq!(code, 0);
    assert!(process_gone(pid));
    assert!(
        !creds.exists(),
        "credentials are removed when the unit stops"
    );
    let (code, out, _) = m.run_tool(u, &["systemctl", "is-active", "sleeper.service"])?;
    assert_eq!((code, out.trim()), (3, "inactive"));
    let (code, _, err) = m.run_tool(u, &["systemctl", "start", "missing.service"])?;
    assert_eq!(code, 5);
    assert!(err.contains("Unit missing.service not found"), "{err}");

    // Without its credential file the unit does not start, as with systemd.
    std::fs::remove_file(root.join("etc/app/s3.yaml"))?;
    let (code, _, err) = m.run_tool(u, &["systemctl", "start", "sleeper.service"])?;
    assert_eq!(code, 1, "{err}");
    let (_, out, _) = m.run_tool(u, &["systemctl", "is-active", "sleeper.service"])?;
    assert_eq!(out.trim(), "failed");
    Ok(())
}

#[test]
fn stop_kills_the_whole_process_group_and_drop_leaves_no_processes() -> Result<()> {
    let charm = systemd_charm(&[("stubborn.service", STUBBORN), ("sleeper.service", SLEEPER)]);
    let pids;
    {
        let mut m = Model::new(charm.path())?;
        m.deploy(2)?;
        for u in m.units() {
            m.run_hook(&u, "install-units")?;
            m.run_hook(&u, "start-all")?;
        }
        let u = "chopsticks/0";
        let main = main_pid(&m, u, "stubborn.service")?;
        let group = wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
            let members = model::processes_matching("sleep 300")
                .into_iter()
                .filter(|(pid, argv)| argv.starts_with("sleep") && pgid(*pid) == pgid(main))
                .map(|(pid, _)| pid)
                .collect::<Vec<_>>();
            Ok((members.len() == 2).then_some(members))
        })?;
        let started = std::time::Instant::now();
        let (code, _, _) = m.run_tool(u, &["systemctl", "stop", "stubborn.service"])?;
        assert_eq!(code, 0);
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "TERM is ignored: KILL after TimeoutStopSec"
        );
        assert!(process_gone(main) && group.iter().all(|p| process_gone(*p)));

        pids = m
            .units()
            .iter()
            .map(|u| main_pid(&m, u, "sleeper.service"))
            .collect::<Result<Vec<_>>>()?;
        assert_eq!(pids.len(), 2);
        assert!(pids.iter().all(|p| !process_gone(*p)));
    }
    for pid in pids {
        wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
            Ok(process_gone(pid).then_some(()))
        })?;
    }
    Ok(())
}

fn pgid(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")
        .and_then(|(_, r)| r.split_whitespace().nth(2).map(str::to_string))
}

#[test]
fn packed_charm_zip_is_unpacked_with_modes() -> Result<()> {
    let charm = tiny_charm(&[]);
    let zip = tempfile::tempdir()?;
    let zip_path = zip.path().join("tiny.charm");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            ZIP_PY,
            charm.path().to_str().unwrap(),
            zip_path.to_str().unwrap(),
        ])
        .status()?;
    assert!(status.success());
    let mut m = Model::new(&zip_path)?;
    m.deploy(1)?;
    assert_eq!(m.status("chopsticks/0")?.0, "active");
    Ok(())
}

/// Zips a directory keeping unix modes, as charmcraft and scripts/pack-charm.sh do.
const ZIP_PY: &str = r#"
import os, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dest, "w") as z:
    for base, dirs, files in os.walk(src):
        for name in files:
            path = os.path.join(base, name)
            info = zipfile.ZipInfo(os.path.relpath(path, src))
            info.external_attr = (os.stat(path).st_mode & 0o7777 | 0o100000) << 16
            z.writestr(info, open(path, "rb").read())
"#;

//! Scenarios compiled into the binary; the charm also installs them in
//! `/opt/chopsticks/scenarios/` so operators can read and copy them.

/// (name, YAML text) of every built-in scenario.
pub static BUILTINS: &[(&str, &str)] = &[
    (
        "s3_large_objects",
        include_str!("../../../scenarios/s3_large_objects.yaml"),
    ),
    (
        "s3_small_objects",
        include_str!("../../../scenarios/s3_small_objects.yaml"),
    ),
    (
        "s3_mixed_workload",
        include_str!("../../../scenarios/s3_mixed_workload.yaml"),
    ),
    (
        "s3_multipart_upload",
        include_str!("../../../scenarios/s3_multipart_upload.yaml"),
    ),
    (
        "s3_read_heavy",
        include_str!("../../../scenarios/s3_read_heavy.yaml"),
    ),
    (
        "s3_metadata_intensive",
        include_str!("../../../scenarios/s3_metadata_intensive.yaml"),
    ),
];

/// The YAML of the built-in called `name`.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, y)| *y)
}

pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}

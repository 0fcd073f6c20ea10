//! The default rule pack, built into the binary: the rules in the repository's
//! `rules/evident/` folder, used when the service is given no rules directory.

/// `(file name, YAML text)` of every rule file in the default pack.
pub const DEFAULT_PACK: &[(&str, &str)] = &[
    (
        "access_denied_burst.yml",
        include_str!("../../../rules/evident/access_denied_burst.yml"),
    ),
    (
        "brute_force_per_user.yml",
        include_str!("../../../rules/evident/brute_force_per_user.yml"),
    ),
    (
        "control_setpoint_change.yml",
        include_str!("../../../rules/evident/control_setpoint_change.yml"),
    ),
    (
        "encryption_failure.yml",
        include_str!("../../../rules/evident/encryption_failure.yml"),
    ),
    (
        "equipment_error.yml",
        include_str!("../../../rules/evident/equipment_error.yml"),
    ),
    (
        "mass_data_export.yml",
        include_str!("../../../rules/evident/mass_data_export.yml"),
    ),
    (
        "off_hours_admin.yml",
        include_str!("../../../rules/evident/off_hours_admin.yml"),
    ),
    (
        "path_traversal_attempt.yml",
        include_str!("../../../rules/evident/path_traversal_attempt.yml"),
    ),
    (
        "privilege_change.yml",
        include_str!("../../../rules/evident/privilege_change.yml"),
    ),
    (
        "quality_failure_spike.yml",
        include_str!("../../../rules/evident/quality_failure_spike.yml"),
    ),
    (
        "safety_override.yml",
        include_str!("../../../rules/evident/safety_override.yml"),
    ),
    (
        "sql_injection_attempt.yml",
        include_str!("../../../rules/evident/sql_injection_attempt.yml"),
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_pack_is_every_file_of_the_rules_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/evident");
        let on_disk: Vec<String> = crate::rules::rule_files(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let built_in: Vec<&str> = super::DEFAULT_PACK.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, built_in, "add new rule files to DEFAULT_PACK");
        let (_, report) = crate::Detector::from_sources(super::DEFAULT_PACK);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

//! The master key file.

use evident_privacy::{MasterKey, PrivacyError};

#[test]
fn load_or_create_makes_a_private_file_and_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets/deeper/master.key");
    let created = MasterKey::load_or_create(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim(), created.to_base64());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let loaded = MasterKey::load_or_create(&path).unwrap();
    assert_eq!(loaded, created);
    // Only the key file is left in its directory.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["master.key"]);
}

#[test]
fn an_existing_key_file_is_used_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = MasterKey::generate();
    std::fs::write(&path, format!("\n  {}  \n", key.to_base64())).unwrap();
    assert_eq!(MasterKey::load_or_create(&path).unwrap(), key);
}

#[test]
fn bad_key_file_contents_give_a_clear_error_without_the_contents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    for (contents, expected) in [
        ("c2hvcnQ=", "got 5 bytes"),
        ("this is not base64 #@!", "not valid base64"),
        ("", "got 0 bytes"),
    ] {
        std::fs::write(&path, contents).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err();
        assert!(matches!(err, PrivacyError::MasterKey(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("master key: "), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("expected 32 bytes of base64"), "{text}");
        assert!(text.contains(expected), "{text}");
        if !contents.is_empty() {
            assert!(!text.contains(contents), "{text}");
        }
        // The bad file is not replaced.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), contents);
    }
}

#[test]
fn an_unreadable_key_path_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("master.key");
    std::fs::create_dir(&path).unwrap();
    let err = MasterKey::load_or_create(&path).unwrap_err();
    assert!(matches!(err, PrivacyError::Io(_)), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

//! What an attacker would try first: files others can read, connections held open,
//! bodies that are not what they say.

use super::common::Server;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

/// Every file a server puts in its data directory (the database with its WAL and shared
/// memory, the critical journal, the subject key store, the keys, the lock and address
/// files) is readable by its owner only, whatever the umask.
#[tokio::test]
async fn data_directory_files_are_private() {
    let (_dir, server) = Server::start_fresh();
    let (status, _) = server
        .post_json(&json!([
            {"type": "threat.sql.injection", "priority": "critical", "actor": {"user_id": "eve"}},
            {"type": "user.login", "actor": {"user_id": "ann", "ip": "10.0.0.1"}}
        ]))
        .await;
    assert_eq!(status, 202);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&server.dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        // The test harness's own log, and the rule files (the public default pack).
        if name == "server.log" || !entry.file_type().unwrap().is_file() {
            continue;
        }
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{name} is mode {mode:o}");
        seen.push(name);
    }
    for expected in [
        "evident.db",
        "evident.db-wal",
        "evident.db-shm",
        "critical.db",
        "critical.db-wal",
        "subject-keys.db",
        "subject-keys.db-wal",
        "admin.key",
        "master.key",
        "evident.lock",
        "evident.addr",
    ] {
        assert!(
            seen.iter().any(|n| n == expected),
            "{expected} not among {seen:?}"
        );
    }
}

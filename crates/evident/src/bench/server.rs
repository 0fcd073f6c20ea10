//! A server process started for a benchmark run: this binary's `serve` on a fresh directory.

use crate::serve::{ADDR_FILE, ADMIN_KEY_FILE};
use anyhow::{Context, bail};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running server child process.
pub struct Spawned {
    child: Child,
    /// Its base URL.
    pub url: String,
    /// Its admin key.
    pub key: String,
}

impl Spawned {
    /// Starts `evident serve` on a fresh `data_dir` and a free port, with `extra` serve
    /// arguments, and waits until it is ready.
    pub async fn start(data_dir: &Path, extra: &[String]) -> anyhow::Result<Self> {
        Self::start_on_cpus(data_dir, extra, None).await
    }

    /// [`Spawned::start`], on the CPUs `cpus` (a `taskset -c` list) when given, so the
    /// server and the load can be kept apart.
    pub async fn start_on_cpus(
        data_dir: &Path,
        extra: &[String],
        cpus: Option<&str>,
    ) -> anyhow::Result<Self> {
        if data_dir.try_exists().unwrap_or(true) {
            std::fs::remove_dir_all(data_dir)
                .with_context(|| format!("cannot clear {}", data_dir.display()))?;
        }
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("EVIDENT_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the server")?;
        for _ in 0..300 {
            if let (Ok(addr), Ok(key)) = (
                std::fs::read_to_string(data_dir.join(ADDR_FILE)),
                std::fs::read_to_string(data_dir.join(ADMIN_KEY_FILE)),
            ) && !key.trim().is_empty()
            {
                return Ok(Self {
                    child,
                    url: format!("http://{}", addr.trim()),
                    key: key.trim().to_owned(),
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!("the server exited during start-up: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the server did not start within 30 s")
    }

    /// The server's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Asks the server to shut down (SIGTERM via `kill`), killing it if it lingers.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .ok();
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await.ok();
        }
    }
}

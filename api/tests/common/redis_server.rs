//! A Redis server of the test's own, so that it can be restarted without touching the one other
//! tests share. It keeps an append-only file, fsynced on every write, as a production Redis that
//! holds a job queue must: a restart then loses no job.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` keeping its files in `dir`, or `None` (skipped, loudly) when it is
    /// not installed and this is not CI.
    pub async fn start(dir: PathBuf) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "redis-server is required on CI"
            );
            eprintln!("\n*** SKIPPED: redis-server is not installed ***\n");
            return None;
        }
        let mut server = Self {
            port: super::free_port(),
            dir,
            child: None,
        };
        server.launch().await;
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("PING").await.as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One inline command; its first reply line, or `None` when the server is not there.
    async fn command(&self, command: &str) -> Option<String> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .ok()?;
        let mut reply = vec![0; 64];
        let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut reply))
            .await
            .ok()?
            .ok()?;
        let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
        Some(reply.lines().next().unwrap_or_default().to_owned())
    }

    /// Shuts the server down (its append-only file is complete: every write was fsynced).
    pub async fn stop(&mut self) {
        let _ = self.command("SHUTDOWN").await;
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "redis-server did not shut down");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Starts it again on the same port, from the same files.
    pub async fn start_again(&mut self) {
        self.launch().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

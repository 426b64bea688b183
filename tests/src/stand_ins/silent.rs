//! A server that takes each request whole and then hangs up without answering: what a client
//! sees when the connection breaks after its request went out (a proxy dropping it, a network
//! cut, the server dying mid-request). The request may have been acted on; the client cannot
//! know.

use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// One request the silent server read: its request line (`POST /v21.0/PN/messages HTTP/1.1`)
/// and body.
#[derive(Debug, Clone)]
pub struct Heard {
    pub request_line: String,
    pub body: Vec<u8>,
}

/// Listens on 127.0.0.1 until dropped.
pub struct SilentServer {
    pub base_url: String,
    heard: Arc<Mutex<Vec<Heard>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = heard.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    if let Some(request) = read_request(&mut socket).await {
                        log.lock().unwrap().push(request);
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            base_url,
            heard,
            task,
        }
    }

    /// The requests read so far, in order.
    pub fn heard(&self) -> Vec<Heard> {
        self.heard.lock().unwrap().clone()
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request: the head, then `Content-Length` bytes of body.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Heard> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&chunk[..n]);
    }
    Some(Heard {
        request_line: head.lines().next().unwrap_or_default().to_owned(),
        body: data[head_end..].to_vec(),
    })
}

//! A loopback TCP proxy that can break the connections passing through it, so tests can take a
//! broker or database away from one process without touching the shared server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Control {
    /// New connections are accepted and closed at once.
    refuse: AtomicBool,
    /// Bytes stop flowing (connections stay open, as with a network partition).
    stall: AtomicBool,
    /// Bumped by `cut_all`; each connection task ends when it sees a new generation.
    generation: AtomicUsize,
    cut: Notify,
    unstall: Notify,
    accepted: AtomicUsize,
}

pub struct FaultProxy {
    addr: SocketAddr,
    control: Arc<Control>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listen on 127.0.0.1 (random port) and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let control = Arc::new(Control::default());
        let accept_control = control.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                accept_control.accepted.fetch_add(1, Ordering::Relaxed);
                if accept_control.refuse.load(Ordering::Relaxed) {
                    let _ = client.shutdown().await;
                    continue;
                }
                let control = accept_control.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    forward(client, server, control).await;
                });
            }
        });
        Ok(FaultProxy {
            addr,
            control,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Close every connection currently open (new ones still get through).
    pub fn cut_all(&self) {
        self.control.generation.fetch_add(1, Ordering::SeqCst);
        self.control.cut.notify_waiters();
    }

    pub fn set_refuse(&self, refuse: bool) {
        self.control.refuse.store(refuse, Ordering::SeqCst);
    }

    pub fn set_stall(&self, stall: bool) {
        self.control.stall.store(stall, Ordering::SeqCst);
        if !stall {
            self.control.unstall.notify_waiters();
        }
    }

    /// Connections accepted so far (including refused ones).
    pub fn accepted(&self) -> usize {
        self.control.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn forward(client: TcpStream, server: TcpStream, control: Arc<Control>) {
    let generation = control.generation.load(Ordering::SeqCst);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, control.clone());
    let down = pump(server_read, client_write, control.clone());
    let cut = async {
        loop {
            let notified = control.cut.notified();
            if control.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            notified.await;
        }
    };
    // Dropping the halves closes both sockets.
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<Control>,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while control.stall.load(Ordering::SeqCst) {
            let notified = control.unstall.notified();
            if !control.stall.load(Ordering::SeqCst) {
                break;
            }
            notified.await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

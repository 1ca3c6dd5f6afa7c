//! The accept loop of `k2 serve`: HTTP/1.1 connections with timers, so a room full of
//! clients cannot hold the server with connections that do nothing.
//!
//! - Headers must arrive within the header timeout; the same timer closes a keep-alive
//!   connection that sends no next request (hyper's `header_read_timeout`).
//! - A request body that stops arriving fails after the body timeout (`TimedBody`, 408).
//! - A client that stops reading is dropped after the write timeout (`TimedIo`); a stream that
//!   is being read, however long, is never cut.
//! - At most `max_connections` are open; one more is answered 503 and closed at once.
//! - On shutdown the loop stops accepting, every connection finishes its current answer (the
//!   scheduler's shutdown ends the streams) and idle ones close; `serve` returns when all are
//!   gone.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower_service::Service;

use crate::metrics::{Metrics, Rejection};
use crate::timeouts::{BodyStalled, TimedBody, TimedIo};

/// What one connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a request's headers, and the longest a keep-alive connection may idle.
    pub header_timeout: Duration,
    /// Longest pause in a request body.
    pub body_timeout: Duration,
    /// Longest a write may wait for a client that stopped reading.
    pub write_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves and every connection has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if limits.max_connections == 0 || limits.max_connections > Semaphore::MAX_PERMITS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--max-connections must be at least 1",
        ));
    }
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_stopping = stopping.clone();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut accept_stopping) => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            metrics.reject(Rejection::Connections);
            refuse(&stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            builder: builder.clone(),
            limits,
            metrics: metrics.clone(),
        };
        let stopping = stopping.clone();
        tokio::spawn(async move {
            connection.run(stream, stopping).await;
            drop(permit);
        });
    }
    // Every permit back: every connection has closed.
    let _all = open
        .acquire_many(limits.max_connections as u32)
        .await
        .map_err(io::Error::other)?;
    Ok(())
}

/// Resolves once shutdown began (or its sender is gone, which happens only then).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not held across an await.
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Answers a connection over the limit without reading it (a best-effort write: its buffer
/// is empty, so this small answer fits).
fn refuse(stream: &TcpStream) {
    let body = r#"{"error":{"message":"the server has too many open connections; retry shortly","type":"server_error","code":503}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

struct Connection {
    app: Router,
    builder: http1::Builder,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut stopping: watch::Receiver<bool>) {
        let _open = self.metrics.connection_opened();
        let io = TokioIo::new(TimedIo::new(
            stream,
            self.limits.write_timeout,
            self.metrics.clone(),
        ));
        let (app, metrics, body_timeout) =
            (self.app, self.metrics.clone(), self.limits.body_timeout);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let stalled = BodyStalled::default();
            let mut request = request.map(|body| {
                Body::new(TimedBody::new(
                    body,
                    body_timeout,
                    stalled.clone(),
                    metrics.clone(),
                ))
            });
            request.extensions_mut().insert(stalled);
            // A router is always ready: no `poll_ready` needed.
            app.clone().call(request)
        });
        let connection = self.builder.serve_connection(io, service);
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = stopped(&mut stopping) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            if e.is_timeout() {
                self.metrics.reject(Rejection::HeaderTimeout);
            } else {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
    }
}

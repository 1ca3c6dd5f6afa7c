//! Timers for clients that stop: a request body that stops arriving ([`TimedBody`], answered
//! 408 by [`answer_body_timeout`]) and a client that stops reading what it is sent
//! ([`TimedIo`]: a write that makes no progress for the write timeout fails, which ends the
//! connection). Slow headers and idle keep-alive connections are hyper's header timeout (see
//! `listen`).
//!
//! Both timers measure a stall, never a total: a long SSE stream that its client reads, or a
//! large body that keeps arriving, is never cut.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::metrics::{Metrics, Rejection};

/// Set when a request's body timed out (in the request's extensions), so the answer is 408
/// whatever the handler made of the failed read.
#[derive(Clone, Default)]
pub struct BodyStalled(Arc<AtomicBool>);

impl BodyStalled {
    fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request body that fails when no frame arrives for `timeout`.
pub struct TimedBody<B> {
    body: B,
    timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    stalled: BodyStalled,
    metrics: Arc<Metrics>,
}

impl<B> TimedBody<B> {
    pub fn new(body: B, timeout: Duration, stalled: BodyStalled, metrics: Arc<Metrics>) -> Self {
        TimedBody {
            body,
            timeout,
            stall: None,
            stalled,
            metrics,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.stall = None;
                this.stalled.0.store(true, Ordering::Relaxed);
                this.metrics.reject(Rejection::BodyTimeout);
                Poll::Ready(Some(Err(format!(
                    "no part of the request body arrived for {} s",
                    timeout.as_secs_f64()
                )
                .into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Answers 408 and closes the connection when the request's body stalled (the handler saw a
/// failed read and may have answered anything).
pub async fn answer_body_timeout(request: Request, next: Next) -> Response {
    let stalled = request.extensions().get::<BodyStalled>().cloned();
    let response = next.run(request).await;
    if !stalled.is_some_and(|s| s.happened()) {
        return response;
    }
    let mut response = ApiError {
        status: StatusCode::REQUEST_TIMEOUT,
        kind: "invalid_request_error",
        message: "the request body stopped arriving; send it whole".into(),
        retry_after_s: None,
    }
    .into_response();
    // The rest of the body may still come; it is not read.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A connection whose writes fail after `timeout` without progress (the client stopped
/// reading and the socket's buffers are full). Reads are left to hyper's header timeout and
/// [`TimedBody`].
pub struct TimedIo<T> {
    io: T,
    timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
}

impl<T> TimedIo<T> {
    pub fn new(io: T, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        TimedIo {
            io,
            timeout,
            stall: None,
            metrics,
        }
    }

    /// After a write that could not proceed: arms the stall timer, or fails once it ran out.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let timeout = self.timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.stall = None;
        self.metrics.reject(Rejection::WriteTimeout);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing for the write timeout",
        )))
    }

    /// `Pending` arms (or checks) the stall timer; anything else is progress and disarms it.
    fn track<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Pending => match self.stalled(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            ready => {
                self.stall = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.track(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.track(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.track(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.track(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new(false))
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_whose_reader_stops_fails_after_the_timeout() {
        // A 64-byte pipe stands in for the socket's buffers.
        let (near, mut far) = tokio::io::duplex(64);
        let metrics = metrics();
        let mut io = TimedIo::new(near, Duration::from_secs(60), metrics.clone());
        // The reader keeps up: 10 minutes of slow writes never time out.
        for _ in 0..20 {
            io.write_all(&[7; 48]).await.unwrap();
            let mut got = [0; 48];
            far.read_exact(&mut got).await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        // The reader stops: the pipe fills, and the next write fails after 60 s.
        let started = tokio::time::Instant::now();
        let error = io.write_all(&[7; 1000]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        assert!(metrics
            .render_rejections()
            .contains("reason=\"write_timeout\"} 1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_fails_and_is_flagged() {
        use tokio_stream::StreamExt;
        let (sender, frames) = tokio::sync::mpsc::channel::<Bytes>(4);
        let frames = tokio_stream::wrappers::ReceiverStream::new(frames)
            .map(|bytes| Ok::<_, std::convert::Infallible>(Frame::data(bytes)));
        let body = http_body_util::StreamBody::new(frames);
        let stalled = BodyStalled::default();
        let metrics = metrics();
        let timed = TimedBody::new(body, Duration::from_secs(30), stalled.clone(), metrics);
        let mut timed = std::pin::pin!(timed);
        sender.send(Bytes::from_static(b"{\"a\":")).await.unwrap();
        let first = std::future::poll_fn(|cx| timed.as_mut().poll_frame(cx)).await;
        assert!(first.unwrap().is_ok());
        let started = tokio::time::Instant::now();
        let next = std::future::poll_fn(|cx| timed.as_mut().poll_frame(cx)).await;
        assert!(next.unwrap().is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(stalled.happened());
    }
}

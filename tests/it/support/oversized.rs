//! A server on 127.0.0.1 whose every answer is `200 OK` with a body of a given size: sent with
//! its `Content-Length`, or chunked without one (so a client must count while it reads).

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;

pub struct Oversized {
    pub url: String,
}

impl Oversized {
    /// Answer every request with `size` bytes of `x`; `chunked` sends them in 64 KiB chunks
    /// without a `Content-Length`.
    pub fn start(size: usize, chunked: bool) -> Oversized {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                let app = axum::Router::new().fallback(move || async move {
                    let body = if chunked {
                        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                        let n = size.div_ceil(chunk.len());
                        let chunks = (0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
                        Body::from_stream(futures::stream::iter(chunks))
                    } else {
                        Body::from(vec![b'x'; size])
                    };
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(body)
                        .expect("response")
                });
                axum::serve(listener, app).await.ok();
            });
        });
        let addr = rx.recv().expect("server address");
        Oversized {
            url: format!("http://{addr}"),
        }
    }
}

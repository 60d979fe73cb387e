//! Slow and many connections: the per-address connection cap, slowloris and silent clients,
//! idle connections and slow bodies (timeouts).

use super::*;
use tokio::io::AsyncWriteExt;

/// Whether the server closes `stream` (reads EOF or a reset) within `bound`; anything it sends
/// first is returned.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(end, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Connections over the per-address cap are refused at once; another address still gets
/// through, and a freed slot is usable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_refused() {
    let app = edge_app(|c| {
        c.max_connections_per_address = 2;
        c.header_read_timeout_seconds = 60;
    })
    .await;
    let first = connect_from(&app, "127.0.0.1").await;
    let mut second = connect_from(&app, "127.0.0.1").await;
    // Prove both are being served (accepted and counted) before the third arrives.
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut second).await.0, 200);
    let mut third = connect_from(&app, "127.0.0.1").await;
    let seen = closed_within(&mut third, Duration::from_secs(20))
        .await
        .expect("the third connection is closed by the server");
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.is_empty() || seen.starts_with("HTTP/1.1 429"),
        "{seen}"
    );
    assert!(seen.is_empty() || seen.contains("rate_limited"), "{seen}");
    let resp = client_from("127.0.0.2")
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("another address gets through");
    assert_eq!(resp.status().as_u16(), 200);
    // Freeing a slot lets the address in again (once the server has seen the close).
    drop(first);
    let mut served = false;
    for _ in 0..100 {
        let mut again = connect_from(&app, "127.0.0.1").await;
        if again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .is_ok()
            && let Some(seen) = closed_within(&mut again, Duration::from_secs(5)).await
            && String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the freed slot is usable");
    drop(second);
    app.stop().await;
}

/// A slowloris client (headers trickled) and a silent one are cut off by the header-read
/// timeout; the server keeps answering others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_silent_clients_are_cut_off() {
    let app = edge_app(|c| {
        c.header_read_timeout_seconds = 1;
        c.idle_timeout_seconds = 600;
    })
    .await;
    let mut silent = connect_from(&app, "127.0.0.1").await;
    let slow = connect_from(&app, "127.0.0.1").await;
    let (mut slow_read, mut slow_write) = slow.into_split();
    let closed = tokio::spawn(async move {
        let mut b = [0u8; 256];
        loop {
            match slow_read.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    slow_write
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .await
        .expect("write");
    let mut cut_off = false;
    // Up to 60 s of trickling, one header line every 250 ms; the timeout is 1 s.
    for i in 0..240 {
        if closed.is_finished() {
            cut_off = true;
            break;
        }
        let line = format!("X-Slow-{i}: 1\r\n");
        if slow_write.write_all(line.as_bytes()).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(cut_off, "the trickling client was cut off");
    assert!(
        closed_within(&mut silent, Duration::from_secs(30))
            .await
            .is_some(),
        "the silent client was cut off"
    );
    let resp = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("others are served");
    assert_eq!(resp.status().as_u16(), 200);
    app.stop().await;
}

/// A kept-alive connection with no request in flight is closed after `idle_timeout_seconds`
/// (the header-read timeout is far longer here, so it is the idle timer that closes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let app = edge_app(|c| {
        c.header_read_timeout_seconds = 120;
        c.idle_timeout_seconds = 1;
    })
    .await;
    let mut conn = connect_from(&app, "127.0.0.1").await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut conn).await.0, 200);
    let seen = closed_within(&mut conn, Duration::from_secs(60))
        .await
        .expect("closed while idle");
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));
    app.stop().await;
}

/// A body that does not arrive within `body_timeout_seconds` is answered 408 in the one
/// error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_answered_408() {
    let app = edge_app(|c| c.body_timeout_seconds = 1).await;
    let mut conn = connect_from(&app, "127.0.0.1").await;
    conn.write_all(
        b"POST /api/v1/signin HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    )
    .await
    .expect("write");
    let (status, head, body) = read_answer(&mut conn).await;
    assert_eq!(status, 408, "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], "request_timeout");
    app.stop().await;
}

//! Smoke test: the real app opens its window under Xvfb and WebDriver can read and photograph it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_opens_with_title_and_screenshot() {
    if let Some(reason) = common::skip_reason() {
        eprintln!("skipping GUI test: {reason}");
        return;
    }
    let started = std::time::Instant::now();
    let app = common::AppSession::start(&[], &[]).await;
    // The UI marks itself ready once its first snapshot from Rust has rendered.
    app.wait_css("html[data-ready='1']").await;
    let usable_after = started.elapsed();
    app.wait_text("#brand", "the brand", |t| t == "Ferry").await;
    assert_eq!(app.c().title().await.unwrap(), "Ferry");
    // Figures for the notes (a measure, not asserted): the whole app tree, idle.
    eprintln!("measure: app tree idle (no demo): {}", app.footprint_line());
    let shot = app.screenshot("gui_window").await;
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
    eprintln!(
        "window usable {usable_after:?} after launch; screenshot {}",
        shot.display()
    );
    app.close().await;
}

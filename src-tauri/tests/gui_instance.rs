//! The window's life as a desktop user sees it, in the real app under Xvfb with a tray host
//! (a StatusNotifierWatcher) on the private session bus: closing the window closes it to the
//! tray (the window and WebKit's page process go, Ferry stays); a second launch brings it back
//! and exits; the size and position the user gave it
//! come back at the next start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_hides_to_the_tray_a_second_launch_shows_it_and_the_place_is_remembered() {
    if let Some(reason) = common::skip_reason() {
        eprintln!("skipping GUI test: {reason}");
        return;
    }
    // A tray host shows icons on this desktop.
    let (watcher, _host) = common::watcher::Watcher::serve().await;
    let mut app = common::AppSession::start(&[], &[]).await;
    app.keep_data_dir = true;
    app.wait_css("html[data-ready='1']").await;
    app.wait_window_shown(true).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while watcher.items.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the tray item never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The user puts the window somewhere of their own.
    // (Sent again every half second: right after the window maps, GTK may still apply its own
    // size, and there is no window manager here to settle it.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = Instant::now() - Duration::from_secs(1);
    while app.window_geometry() != Some((60, 40, 900, 680)) {
        assert!(
            Instant::now() < deadline,
            "the window did not move: {:?}",
            app.window_geometry()
        );
        if sent.elapsed() >= Duration::from_millis(500) {
            app.place_window(60, 40, 900, 680);
            sent = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Closing hides to the tray (an icon shows Ferry still runs); the process stays, and the
    // window goes with its webview: WebKit's page process exits.
    eprintln!(
        "measure: app tree idle, window open: {}",
        app.footprint_line()
    );
    app.close_until(|| async { !app.window_shown() }).await;
    assert!(
        app.app_pid().is_some(),
        "closing to the tray keeps Ferry running"
    );
    app.wait_webkit(common::PAGE_PROCESS, false).await;
    assert!(
        app.app_pid().is_some(),
        "Ferry still runs in the tray once the window is gone"
    );
    eprintln!(
        "measure: app tree idle in the tray: {}",
        app.footprint_line()
    );

    // A second launch shows the first window and exits itself.
    app.second_launch().await;
    // (A new window: GTK may map it at its declared size before the remembered one applies.)
    app.wait_window_shown(true).await;
    app.wait_geometry((60, 40, 900, 680), "shown where it was")
        .await;
    // The new window's page runs (WebDriver follows it as a new browsing context).
    let deadline = Instant::now() + Duration::from_secs(20);
    let handle = loop {
        let handles = app.c().windows().await.unwrap();
        if let Some(h) = handles.into_iter().last() {
            if app.c().switch_to_window(h.clone()).await.is_ok()
                && app
                    .c()
                    .find(fantoccini::Locator::Css("html[data-ready='1']"))
                    .await
                    .is_ok()
            {
                break h;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the new window's page never got ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("the rebuilt window's page is ready ({handle:?})");

    // Quit; the next start opens the window where the user left it.
    app.terminate_app().await;
    let data_dir = app.data_dir.clone();
    app.close().await;
    assert!(
        data_dir.join("window-state.json").exists(),
        "the window's place is kept in the data dir"
    );
    let app = common::AppSession::start_in(data_dir, &[], &[]).await;
    app.wait_css("html[data-ready='1']").await;
    app.wait_window_shown(true).await;
    app.wait_geometry((60, 40, 900, 680), "the place and size come back")
        .await;
    app.close().await;
}

//! Started in the tray (`--minimized`, as at login), in the real app under Xvfb: with a tray
//! host on the private session bus there is no window and no WebKit process at all until the
//! window is opened (here by a second launch), and closing that window goes back to the tray;
//! with no host the window opens at once, since nothing else would show that Ferry runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_in_the_tray_it_holds_no_webkit_until_opened_and_opens_where_no_tray_shows() {
    if let Some(reason) = common::skip_reason() {
        eprintln!("skipping GUI test: {reason}");
        return;
    }
    // No tray host: the window opens anyway.
    let app = common::AppSession::launch(&["--minimized"]);
    app.wait_window_shown(true).await;
    app.wait_webkit(common::PAGE_PROCESS, true).await;
    app.terminate_app().await;
    app.close().await;

    // A tray host shows icons: the item registers, and nothing of WebKit runs.
    let (watcher, _host) = common::watcher::Watcher::serve().await;
    let app = common::AppSession::launch(&["--minimized"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while watcher.items.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the tray item never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // (The window, were it opened, would be decided right after the item registers.)
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        assert!(!app.window_shown(), "no window when started in the tray");
        assert!(
            !app.webkit_running(common::PAGE_PROCESS)
                && !app.webkit_running(common::NETWORK_PROCESS),
            "no WebKit process when started in the tray: {:?}",
            app.app_memory()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "measure: app tree idle, started in the tray: {}",
        app.footprint_line()
    );

    // Opening it (a second launch, as the tray's Open does) builds the window and its page.
    app.second_launch().await;
    app.wait_window_shown(true).await;
    app.wait_webkit(common::PAGE_PROCESS, true).await;
    // Figures as a user has them (no WebDriver session in the app): window open, then closed.
    eprintln!(
        "measure: app tree idle, window open, no WebDriver: {}",
        app.settled_footprint_line().await
    );

    // Closing it goes back to the tray: the window and its page process go, Ferry stays.
    app.close_until(|| async { !app.window_shown() }).await;
    app.wait_webkit(common::PAGE_PROCESS, false).await;
    assert!(
        app.app_pid().is_some(),
        "closing the window opened from the tray keeps Ferry in the tray"
    );
    eprintln!(
        "measure: app tree idle, closed to the tray, no WebDriver: {}",
        app.settled_footprint_line().await
    );
    app.terminate_app().await;
    app.close().await;
}

//! The tray against a real StatusNotifierWatcher on the private session bus (a minimal one
//! served here, as a panel's would be): the item registers, says "Ferry", shows the status line
//! and an icon, a click (Activate) opens the window and the D-Bus menu's items act. Needs a
//! session bus (scripts/desktop-env.sh); skips with a reason otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::type_complexity
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::watcher::Watcher;
use ferry_desktop::tray::{self, OnAction};
use ferry_desktop::tray_model::{TrayAction, TrayIcon, TrayItem, TrayModel};
use zbus::zvariant::OwnedValue;

fn model(status: &str) -> TrayModel {
    TrayModel {
        icon: TrayIcon::Connected,
        tooltip: status.to_string(),
        items: vec![
            TrayItem::Label(status.to_string()),
            TrayItem::Action {
                action: TrayAction::Disconnect,
                text: "Disconnect".into(),
                enabled: true,
            },
            TrayItem::Separator,
            TrayItem::Action {
                action: TrayAction::ShowWindow,
                text: "Open Ferry".into(),
                enabled: true,
            },
            TrayItem::Action {
                action: TrayAction::Quit,
                text: "Quit".into(),
                enabled: true,
            },
        ],
    }
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The menu's items as (id, label).
fn labels(layout: &(i32, HashMap<String, OwnedValue>, Vec<OwnedValue>)) -> Vec<(i32, String)> {
    layout
        .2
        .iter()
        .filter_map(|child| {
            let (id, props, _): (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>) =
                child.try_clone().ok()?.try_into().ok()?;
            let label: String = props.get("label")?.try_clone().ok()?.try_into().ok()?;
            Some((id, label))
        })
        .collect()
}

#[tokio::test]
async fn the_tray_registers_with_a_watcher_and_its_click_and_menu_act() {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        eprintln!("skipping the tray test: no D-Bus session (run it under scripts/desktop-env.sh)");
        return;
    }
    let (watcher, _watcher_conn) = Watcher::serve().await;
    let seen: Arc<Mutex<Vec<TrayAction>>> = Arc::default();
    let sink = seen.clone();
    let on_action: OnAction = Arc::new(move |a| sink.lock().unwrap().push(a));
    let handle = tray::spawn(model("Connected to New York"), on_action)
        .await
        .expect("the item starts");
    let items = watcher.items.clone();
    let service = until("the item to register", || {
        items.lock().unwrap().first().cloned()
    })
    .await;

    let bus = zbus::Connection::session().await.unwrap();
    // SNI announces changes with its own signals (NewToolTip, ...), not PropertiesChanged:
    // read every property fresh.
    let item: zbus::Proxy = zbus::proxy::Builder::new(&bus)
        .destination(service.clone())
        .unwrap()
        .path("/StatusNotifierItem")
        .unwrap()
        .interface("org.kde.StatusNotifierItem")
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let title: String = item.get_property("Title").await.unwrap();
    assert_eq!(title, "Ferry", "hosts show Ferry, not the binary's name");
    let (_, _, tip_title, tip): (String, Vec<(i32, i32, Vec<u8>)>, String, String) =
        item.get_property("ToolTip").await.unwrap();
    assert_eq!(
        (tip_title.as_str(), tip.as_str()),
        ("Ferry", "Connected to New York")
    );
    let pixmaps: Vec<(i32, i32, Vec<u8>)> = item.get_property("IconPixmap").await.unwrap();
    let (w, h, argb) = &pixmaps[0];
    assert_eq!(argb.len(), (*w * *h * 4) as usize, "{w}×{h} ARGB32");

    // A left click on the icon opens the window.
    let _: () = item.call("Activate", &(0i32, 0i32)).await.unwrap();
    until("the click", || {
        seen.lock()
            .unwrap()
            .contains(&TrayAction::ShowWindow)
            .then_some(())
    })
    .await;

    // The menu: its items by label; clicking Disconnect and Quit reaches the app.
    let menu_path: zbus::zvariant::OwnedObjectPath = item.get_property("Menu").await.unwrap();
    let menu = zbus::Proxy::new(
        &bus,
        service.as_str(),
        menu_path.as_str(),
        "com.canonical.dbusmenu",
    )
    .await
    .unwrap();
    let (_, layout): (u32, (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>)) = menu
        .call("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
        .await
        .unwrap();
    let items = labels(&layout);
    let names: Vec<&str> = items.iter().map(|(_, l)| l.as_str()).collect();
    assert!(names.contains(&"Connected to New York"), "{names:?}");
    assert!(
        names.contains(&"Open Ferry") && names.contains(&"Quit"),
        "{names:?}"
    );
    for (want, action) in [
        ("Disconnect", TrayAction::Disconnect),
        ("Quit", TrayAction::Quit),
    ] {
        let id = items.iter().find(|(_, l)| l == want).unwrap().0;
        let _: () = menu
            .call(
                "Event",
                &(id, "clicked", zbus::zvariant::Value::from(0i32), 0u32),
            )
            .await
            .unwrap();
        until(want, || {
            seen.lock().unwrap().contains(&action).then_some(())
        })
        .await;
    }

    // A new model: the status line follows.
    tray::apply(&handle, model("Disconnected")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, _, tip): (String, Vec<(i32, i32, Vec<u8>)>, String, String) =
            item.get_property("ToolTip").await.unwrap();
        if tip == "Disconnected" {
            break;
        }
        assert!(Instant::now() < deadline, "the tooltip stayed {tip:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! Renders a [`TrayModel`] into Tauri's tray (the I/O edge); a missing tray host is logged, never fatal.

use tauri::image::Image;
use tauri::menu::{IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Runtime};

use crate::tray_model::{TrayAction, TrayIcon as IconKind, TrayItem, TrayModel};

/// Identifier of Ferry's one tray icon.
pub const TRAY_ID: &str = "ferry";

/// PNG bytes of the tray icon for a state.
pub fn icon_bytes(kind: IconKind) -> &'static [u8] {
    match kind {
        IconKind::Disconnected => include_bytes!("../../icons/tray-disconnected.png"),
        IconKind::Connecting => include_bytes!("../../icons/tray-connecting.png"),
        IconKind::Connected => include_bytes!("../../icons/tray-connected.png"),
        IconKind::Error => include_bytes!("../../icons/tray-error.png"),
    }
}

/// Errors while building the tray.
#[derive(Debug, thiserror::Error)]
pub enum TrayError {
    /// Tauri refused the menu or icon.
    #[error("tray: {0}")]
    Tauri(#[from] tauri::Error),
    /// The tray library panicked (typically: no appindicator library on this system).
    #[error("tray library unavailable")]
    Unavailable,
}

fn menu<R: Runtime>(app: &AppHandle<R>, items: &[TrayItem]) -> tauri::Result<Menu<R>> {
    let built = build_items(app, items, "")?;
    let refs: Vec<&dyn IsMenuItem<R>> = built.iter().map(|b| b.as_ref()).collect();
    Menu::with_items(app, &refs)
}

fn build_items<R: Runtime>(
    app: &AppHandle<R>,
    items: &[TrayItem],
    prefix: &str,
) -> tauri::Result<Vec<Box<dyn IsMenuItem<R>>>> {
    let mut out: Vec<Box<dyn IsMenuItem<R>>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            TrayItem::Label(text) => out.push(Box::new(MenuItem::with_id(
                app,
                format!("label{prefix}-{i}"),
                text,
                false,
                None::<&str>,
            )?)),
            TrayItem::Action {
                action,
                text,
                enabled,
            } => out.push(Box::new(MenuItem::with_id(
                app,
                action.id(),
                text,
                *enabled,
                None::<&str>,
            )?)),
            TrayItem::Separator => out.push(Box::new(PredefinedMenuItem::separator(app)?)),
            TrayItem::Submenu { text, items } => {
                let children = build_items(app, items, &format!("{prefix}-{i}"))?;
                let refs: Vec<&dyn IsMenuItem<R>> = children.iter().map(|b| b.as_ref()).collect();
                out.push(Box::new(Submenu::with_items(app, text, true, &refs)?));
            }
        }
    }
    Ok(out)
}

/// Creates the tray icon from a first model; `on_action` gets every clicked action.
pub fn install<R: Runtime>(
    app: &AppHandle<R>,
    model: &TrayModel,
    on_action: impl Fn(&AppHandle<R>, TrayAction) + Send + Sync + 'static,
) -> Option<TrayIcon<R>> {
    match build(app, model, on_action) {
        Ok(tray) => {
            tracing::debug!("tray icon created");
            Some(tray)
        }
        Err(err) => {
            tracing::warn!(%err, "no tray icon; the window stays the only way in");
            None
        }
    }
}

fn build<R: Runtime>(
    app: &AppHandle<R>,
    model: &TrayModel,
    on_action: impl Fn(&AppHandle<R>, TrayAction) + Send + Sync + 'static,
) -> Result<TrayIcon<R>, TrayError> {
    let builder = TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(icon_bytes(model.icon))?)
        .tooltip(&model.tooltip)
        .menu(&menu(app, &model.items)?)
        .show_menu_on_left_click(false)
        .on_menu_event(move |app, event| {
            if let Some(action) = TrayAction::from_id(event.id().as_ref()) {
                on_action(app, action);
            }
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                crate::shell::show_main_window(tray.app_handle());
            }
        });
    // The appindicator library is dlopen'ed inside build() and panics when absent.
    let handle = app.clone();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.build(&handle))) {
        Ok(Ok(tray)) => Ok(tray),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Err(TrayError::Unavailable),
    }
}

/// Applies a new model to the existing tray (icon, tooltip, menu).
pub fn apply<R: Runtime>(app: &AppHandle<R>, model: &TrayModel) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let result = Image::from_bytes(icon_bytes(model.icon))
        .and_then(|icon| tray.set_icon(Some(icon)))
        .and_then(|()| tray.set_tooltip(Some(&model.tooltip)))
        .and_then(|()| menu(app, &model.items))
        .and_then(|m| tray.set_menu(Some(m)));
    if let Err(err) = result {
        tracing::warn!(%err, "could not update the tray");
    }
}

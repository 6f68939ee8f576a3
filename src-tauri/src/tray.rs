//! Ferry's StatusNotifierItem tray (`ksni`): the [`TrayModel`] rendered as an SNI item with a
//! title, a tooltip (the status line), an icon per state and a D-Bus menu. Unlike Tauri's
//! appindicator tray it has click events: a left click opens the window. It works wherever an
//! SNI host runs (KDE, GNOME with the AppIndicator extension, most panels); a missing host is
//! logged, never fatal, and the window's close then quits instead of hiding.

use std::sync::Arc;

use crate::tray_model::{TrayAction, TrayIcon as IconKind, TrayItem, TrayModel};

/// The item's id and the title hosts show.
pub const TRAY_ID: &str = "ferry";
/// The title the item reports.
pub const TRAY_TITLE: &str = "Ferry";

/// PNG bytes of the tray icon for a state.
pub fn icon_bytes(kind: IconKind) -> &'static [u8] {
    match kind {
        IconKind::Disconnected => include_bytes!("../../icons/tray-disconnected.png"),
        IconKind::Connecting => include_bytes!("../../icons/tray-connecting.png"),
        IconKind::Connected => include_bytes!("../../icons/tray-connected.png"),
        IconKind::Error => include_bytes!("../../icons/tray-error.png"),
    }
}

/// The icon as SNI wants it: ARGB32 in network byte order.
pub fn icon_pixmap(kind: IconKind) -> Option<ksni::Icon> {
    let image = tauri::image::Image::from_bytes(icon_bytes(kind)).ok()?;
    let mut data = Vec::with_capacity(image.rgba().len());
    for px in image.rgba().chunks_exact(4) {
        data.extend_from_slice(&[px[3], px[0], px[1], px[2]]);
    }
    Some(ksni::Icon {
        width: i32::try_from(image.width()).ok()?,
        height: i32::try_from(image.height()).ok()?,
        data,
    })
}

/// What a click in the tray does.
pub type OnAction = Arc<dyn Fn(TrayAction) + Send + Sync>;

/// The tray item: the current model and where clicks go.
pub struct FerryTray {
    /// What it shows.
    pub model: TrayModel,
    on_action: OnAction,
}

impl FerryTray {
    /// A tray showing `model`, sending clicks to `on_action`.
    pub fn new(model: TrayModel, on_action: OnAction) -> Self {
        FerryTray { model, on_action }
    }
}

fn menu_items(items: &[TrayItem]) -> Vec<ksni::MenuItem<FerryTray>> {
    use ksni::menu::{StandardItem, SubMenu};
    items
        .iter()
        .map(|item| match item {
            TrayItem::Label(text) => StandardItem {
                label: text.replace('_', "__"),
                enabled: false,
                ..Default::default()
            }
            .into(),
            TrayItem::Action {
                action,
                text,
                enabled,
            } => {
                let action = action.clone();
                StandardItem {
                    label: text.replace('_', "__"),
                    enabled: *enabled,
                    activate: Box::new(move |t: &mut FerryTray| (t.on_action)(action.clone())),
                    ..Default::default()
                }
                .into()
            }
            TrayItem::Separator => ksni::MenuItem::Separator,
            TrayItem::Submenu { text, items } => SubMenu {
                label: text.replace('_', "__"),
                submenu: menu_items(items),
                ..Default::default()
            }
            .into(),
        })
        .collect()
}

impl ksni::Tray for FerryTray {
    fn id(&self) -> String {
        TRAY_ID.into()
    }

    fn title(&self) -> String {
        TRAY_TITLE.into()
    }

    fn category(&self) -> ksni::Category {
        ksni::Category::Communications
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        icon_pixmap(self.model.icon).into_iter().collect()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            title: TRAY_TITLE.into(),
            description: self.model.tooltip.clone(),
            ..Default::default()
        }
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        (self.on_action)(TrayAction::ShowWindow);
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        menu_items(&self.model.items)
    }
}

/// A running tray item.
pub type TrayHandle = ksni::Handle<FerryTray>;

/// Starts the item on the session bus. It registers with the StatusNotifierWatcher once one
/// runs (now or later, e.g. when the panel starts after Ferry).
pub async fn spawn(model: TrayModel, on_action: OnAction) -> Result<TrayHandle, ksni::Error> {
    use ksni::TrayMethods as _;
    FerryTray::new(model, on_action)
        .assume_sni_available(true)
        .spawn()
        .await
}

/// Shows a new model (icon, tooltip, menu).
pub async fn apply(handle: &TrayHandle, model: TrayModel) {
    if handle.update(move |t| t.model = model).await.is_none() {
        tracing::debug!("the tray item has stopped");
    }
}

//! The tray as a pure function of state: icon, tooltip and menu items, rebuilt on every change.

use crate::contract::{
    AccountView, ConnectionView, LiveView, MeterView, Phase, QuotaUnit, RegionGroup, RegionRef,
    Service,
};
use crate::format;

/// Which icon the tray shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayIcon {
    /// Grey: nothing running.
    Disconnected,
    /// Amber: connecting, reconnecting or disconnecting.
    Connecting,
    /// Green: connected.
    Connected,
    /// Red: stopped on an error.
    Error,
}

/// What a menu item does when clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrayAction {
    /// Connect to the remembered region.
    Connect,
    /// End the session.
    Disconnect,
    /// Switch (or connect) to this region.
    SwitchRegion(RegionRef),
    /// Show the main window.
    ShowWindow,
    /// End metered sessions, then quit.
    Quit,
}

impl TrayAction {
    /// The menu item id for this action.
    pub fn id(&self) -> String {
        match self {
            TrayAction::Connect => "connect".into(),
            TrayAction::Disconnect => "disconnect".into(),
            TrayAction::SwitchRegion(r) => format!("region:{}:{}", service_key(r.service), r.id),
            TrayAction::ShowWindow => "show".into(),
            TrayAction::Quit => "quit".into(),
        }
    }

    /// Parses a menu item id back into the action; `None` for ids that are not actions.
    pub fn from_id(id: &str) -> Option<TrayAction> {
        match id {
            "connect" => Some(TrayAction::Connect),
            "disconnect" => Some(TrayAction::Disconnect),
            "show" => Some(TrayAction::ShowWindow),
            "quit" => Some(TrayAction::Quit),
            _ => {
                let rest = id.strip_prefix("region:")?;
                let (service, region) = rest.split_once(':')?;
                let service = Service::ALL
                    .into_iter()
                    .find(|s| service_key(*s) == service)?;
                (!region.is_empty()).then(|| {
                    TrayAction::SwitchRegion(RegionRef {
                        service,
                        id: region.to_string(),
                    })
                })
            }
        }
    }
}

fn service_key(s: Service) -> &'static str {
    match s {
        Service::Orbnet => "orbnet",
        Service::Tunnelbyte => "tunnelbyte",
        Service::Neosc => "neosc",
    }
}

/// One item of the tray menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrayItem {
    /// Information only (disabled).
    Label(String),
    /// A clickable item.
    Action {
        /// What it does.
        action: TrayAction,
        /// Its text.
        text: String,
        /// False when greyed out.
        enabled: bool,
    },
    /// A submenu.
    Submenu {
        /// Its text.
        text: String,
        /// Its items.
        items: Vec<TrayItem>,
    },
    /// A separator line.
    Separator,
}

/// The whole tray: icon, tooltip, menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayModel {
    /// Icon to show.
    pub icon: TrayIcon,
    /// Tooltip (also the status line).
    pub tooltip: String,
    /// Menu items, top to bottom.
    pub items: Vec<TrayItem>,
}

/// Everything the tray depends on.
#[derive(Debug, Clone, Copy)]
pub struct TrayInput<'a> {
    /// The connection.
    pub connection: &'a ConnectionView,
    /// Live figures, when connected.
    pub live: Option<&'a LiveView>,
    /// Known regions per service.
    pub regions: &'a [RegionGroup],
    /// The remembered region.
    pub last_region: Option<&'a RegionRef>,
    /// Sign-in state.
    pub accounts: &'a [AccountView],
}

fn region_label(input: &TrayInput<'_>, r: &RegionRef) -> String {
    input
        .regions
        .iter()
        .flat_map(|g| g.regions.iter())
        .find(|x| &x.reference == r)
        .map(|x| x.label.clone())
        .unwrap_or_else(|| r.id.clone())
}

fn signed_in(input: &TrayInput<'_>, s: Service) -> bool {
    input.accounts.iter().any(|a| a.service == s && a.signed_in)
}

/// The status line for a connection.
pub fn status_line(c: &ConnectionView) -> String {
    let place = match (&c.region_label, &c.region) {
        (Some(label), Some(r)) => format!("{label} ({})", r.service.display_name()),
        (None, Some(r)) => format!("{} ({})", r.id, r.service.display_name()),
        _ => String::new(),
    };
    match c.phase {
        Phase::Disconnected => "Disconnected".into(),
        Phase::Connecting => format!("Connecting to {place}…"),
        Phase::Connected => format!("Connected: {place}"),
        Phase::Reconnecting => format!("Reconnecting to {place}…"),
        Phase::Disconnecting => "Disconnecting…".into(),
        Phase::Error => match &c.error {
            Some(e) => format!("Error: {}", e.message),
            None => "Error".into(),
        },
    }
}

/// The credits or cost line, when connected with live figures.
pub fn meter_line(live: &LiveView) -> String {
    match &live.meter {
        MeterView::Credits {
            left,
            burn_per_minute,
            ..
        } => format!(
            "Credits: {} left ({}/min)",
            format::credits(*left),
            format::credits(*burn_per_minute)
        ),
        MeterView::Quota {
            cost_millicents: Some(mc),
            currency,
            ..
        } => format!("Cost so far: {}", format::money(*mc, currency.as_deref())),
        MeterView::Quota {
            cost_millicents: None,
            quotas,
            ..
        } => match quotas.iter().find(|q| q.unit == QuotaUnit::Bytes) {
            Some(q) => match q.limit {
                Some(limit) => format!(
                    "Data: {} of {}",
                    format::bytes(q.used),
                    format::bytes(limit)
                ),
                None => format!("Data: {}", format::bytes(q.used)),
            },
            None => "Free tier".into(),
        },
    }
}

/// Builds the tray from the state.
pub fn build(input: TrayInput<'_>) -> TrayModel {
    let c = input.connection;
    let icon = match c.phase {
        Phase::Disconnected => TrayIcon::Disconnected,
        Phase::Connecting | Phase::Reconnecting | Phase::Disconnecting => TrayIcon::Connecting,
        Phase::Connected => TrayIcon::Connected,
        Phase::Error => TrayIcon::Error,
    };
    let status = status_line(c);
    let mut items = vec![TrayItem::Label(status.clone())];
    if let (Phase::Connected | Phase::Reconnecting, Some(live)) = (c.phase, input.live) {
        items.push(TrayItem::Label(meter_line(live)));
    }
    items.push(TrayItem::Separator);
    let toggle = match c.phase {
        Phase::Disconnected | Phase::Error => match input.last_region {
            Some(r) if signed_in(&input, r.service) => TrayItem::Action {
                action: TrayAction::Connect,
                text: format!("Connect to {}", region_label(&input, r)),
                enabled: true,
            },
            _ => TrayItem::Action {
                action: TrayAction::Connect,
                text: "Connect (pick a region first)".into(),
                enabled: false,
            },
        },
        Phase::Connecting | Phase::Connected | Phase::Reconnecting => TrayItem::Action {
            action: TrayAction::Disconnect,
            text: "Disconnect".into(),
            enabled: true,
        },
        Phase::Disconnecting => TrayItem::Action {
            action: TrayAction::Disconnect,
            text: "Disconnecting…".into(),
            enabled: false,
        },
    };
    items.push(toggle);
    let switching_allowed = c.phase != Phase::Disconnecting;
    let mut region_items = Vec::new();
    for group in input.regions {
        if !signed_in(&input, group.service) || group.regions.is_empty() {
            continue;
        }
        let entries: Vec<TrayItem> = group
            .regions
            .iter()
            .map(|r| {
                let current = c.region.as_ref() == Some(&r.reference)
                    && matches!(
                        c.phase,
                        Phase::Connected | Phase::Connecting | Phase::Reconnecting
                    );
                let mut text = r.label.clone();
                if let Some(country) = &r.country {
                    text.push_str(&format!(", {country}"));
                }
                if current {
                    text = format!("✓ {text}");
                }
                TrayItem::Action {
                    action: TrayAction::SwitchRegion(r.reference.clone()),
                    text,
                    enabled: switching_allowed && r.available && !current,
                }
            })
            .collect();
        region_items.push(TrayItem::Submenu {
            text: group.service.display_name().to_string(),
            items: entries,
        });
    }
    if !region_items.is_empty() {
        items.push(TrayItem::Submenu {
            text: "RegionView".into(),
            items: region_items,
        });
    }
    items.push(TrayItem::Separator);
    items.push(TrayItem::Action {
        action: TrayAction::ShowWindow,
        text: "Show window".into(),
        enabled: true,
    });
    items.push(TrayItem::Action {
        action: TrayAction::Quit,
        text: "Quit".into(),
        enabled: true,
    });
    TrayModel {
        icon,
        tooltip: format!("Ferry: {status}"),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{ErrorView, QuotaView, RegionView, TunnelMode};

    fn region(service: Service, id: &str, label: &str, available: bool) -> RegionView {
        RegionView {
            reference: RegionRef {
                service,
                id: id.into(),
            },
            label: label.into(),
            country: None,
            nodes: None,
            available,
            note: None,
        }
    }

    fn groups() -> Vec<RegionGroup> {
        vec![
            RegionGroup {
                service: Service::Orbnet,
                regions: vec![
                    region(Service::Orbnet, "srv-1", "Paris", true),
                    region(Service::Orbnet, "srv-2", "Oslo", true),
                ],
                error: None,
            },
            RegionGroup {
                service: Service::Tunnelbyte,
                regions: vec![region(Service::Tunnelbyte, "eu-1", "eu-1", false)],
                error: None,
            },
        ]
    }

    fn accounts(orb: bool, tb: bool) -> Vec<AccountView> {
        [(Service::Orbnet, orb), (Service::Tunnelbyte, tb)]
            .into_iter()
            .map(|(service, signed_in)| AccountView {
                service,
                signed_in,
                label: None,
                credits: None,
            })
            .collect()
    }

    fn conn(phase: Phase, region: Option<&str>) -> ConnectionView {
        ConnectionView {
            phase,
            region: region.map(|id| RegionRef {
                service: Service::Orbnet,
                id: id.into(),
            }),
            region_label: region.map(|_| "Paris".into()),
            mode: TunnelMode::App,
            error: (phase == Phase::Error).then(|| ErrorView {
                code: "credits_depleted".into(),
                message: "Your OrbNET credits ran out".into(),
                action: "Top up".into(),
                alternatives: Vec::new(),
            }),
            since_ms: 0,
        }
    }

    fn live(meter: MeterView) -> LiveView {
        LiveView {
            started_ms: 0,
            at_ms: 0,
            exit_ip: None,
            proxy: None,
            http_proxy: None,
            latency_ms: None,
            bytes_in: 0,
            bytes_out: 0,
            rate_in: 0.0,
            rate_out: 0.0,
            meter,
            samples: vec![],
            cap: None,
        }
    }

    fn toggle(m: &TrayModel) -> (TrayAction, String, bool) {
        m.items
            .iter()
            .find_map(|i| match i {
                TrayItem::Action {
                    action: a @ (TrayAction::Connect | TrayAction::Disconnect),
                    text,
                    enabled,
                } => Some((a.clone(), text.clone(), *enabled)),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn icon_status_and_toggle_per_phase() {
        let last = RegionRef {
            service: Service::Orbnet,
            id: "srv-2".into(),
        };
        let g = groups();
        let acc = accounts(true, false);
        // (phase, icon, status, toggle action, toggle text, enabled)
        let table = [
            (
                Phase::Disconnected,
                TrayIcon::Disconnected,
                "Disconnected",
                TrayAction::Connect,
                "Connect to Oslo",
                true,
            ),
            (
                Phase::Connecting,
                TrayIcon::Connecting,
                "Connecting to Paris (OrbNET)…",
                TrayAction::Disconnect,
                "Disconnect",
                true,
            ),
            (
                Phase::Connected,
                TrayIcon::Connected,
                "Connected: Paris (OrbNET)",
                TrayAction::Disconnect,
                "Disconnect",
                true,
            ),
            (
                Phase::Reconnecting,
                TrayIcon::Connecting,
                "Reconnecting to Paris (OrbNET)…",
                TrayAction::Disconnect,
                "Disconnect",
                true,
            ),
            (
                Phase::Disconnecting,
                TrayIcon::Connecting,
                "Disconnecting…",
                TrayAction::Disconnect,
                "Disconnecting…",
                false,
            ),
            (
                Phase::Error,
                TrayIcon::Error,
                "Error: Your OrbNET credits ran out",
                TrayAction::Connect,
                "Connect to Oslo",
                true,
            ),
        ];
        for (phase, icon, status, action, text, enabled) in table {
            let c = conn(phase, (phase != Phase::Disconnected).then_some("srv-1"));
            let m = build(TrayInput {
                connection: &c,
                live: None,
                regions: &g,
                last_region: Some(&last),
                accounts: &acc,
            });
            assert_eq!(m.icon, icon, "{phase:?}");
            assert_eq!(m.items[0], TrayItem::Label(status.into()), "{phase:?}");
            assert_eq!(m.tooltip, format!("Ferry: {status}"));
            assert_eq!(toggle(&m), (action, text.into(), enabled), "{phase:?}");
            assert_eq!(
                m.items.last(),
                Some(&TrayItem::Action {
                    action: TrayAction::Quit,
                    text: "Quit".into(),
                    enabled: true
                })
            );
        }
    }

    #[test]
    fn connect_needs_a_remembered_region_of_a_signed_in_service() {
        let g = groups();
        let c = conn(Phase::Disconnected, None);
        let last = RegionRef {
            service: Service::Orbnet,
            id: "srv-1".into(),
        };
        for (last, acc, enabled) in [
            (None, accounts(true, true), false),
            (Some(&last), accounts(false, true), false),
            (Some(&last), accounts(true, false), true),
        ] {
            let m = build(TrayInput {
                connection: &c,
                live: None,
                regions: &g,
                last_region: last,
                accounts: &acc,
            });
            assert_eq!(toggle(&m).2, enabled);
        }
    }

    #[test]
    fn region_submenu_lists_signed_in_services_and_marks_current() {
        let g = groups();
        let acc = accounts(true, true);
        let c = conn(Phase::Connected, Some("srv-1"));
        let m = build(TrayInput {
            connection: &c,
            live: None,
            regions: &g,
            last_region: None,
            accounts: &acc,
        });
        let Some(TrayItem::Submenu { items, .. }) = m
            .items
            .iter()
            .find(|i| matches!(i, TrayItem::Submenu { text, .. } if text == "RegionView"))
        else {
            panic!("no region submenu: {m:?}")
        };
        assert_eq!(items.len(), 2);
        let TrayItem::Submenu { text, items: orb } = &items[0] else {
            panic!()
        };
        assert_eq!(text, "OrbNET");
        assert_eq!(
            orb[0],
            TrayItem::Action {
                action: TrayAction::SwitchRegion(RegionRef {
                    service: Service::Orbnet,
                    id: "srv-1".into()
                }),
                text: "✓ Paris".into(),
                enabled: false,
            }
        );
        assert!(matches!(&orb[1], TrayItem::Action { enabled: true, text, .. } if text == "Oslo"));
        let TrayItem::Submenu { items: tb, .. } = &items[1] else {
            panic!()
        };
        assert!(
            matches!(&tb[0], TrayItem::Action { enabled: false, .. }),
            "unavailable region is greyed"
        );

        let only_orb = accounts(true, false);
        let m = build(TrayInput {
            connection: &c,
            live: None,
            regions: &g,
            last_region: None,
            accounts: &only_orb,
        });
        let n = m.items.iter().find_map(|i| match i {
            TrayItem::Submenu { items, .. } => Some(items.len()),
            _ => None,
        });
        assert_eq!(n, Some(1));
        let none = accounts(false, false);
        let m = build(TrayInput {
            connection: &c,
            live: None,
            regions: &g,
            last_region: None,
            accounts: &none,
        });
        assert!(!m
            .items
            .iter()
            .any(|i| matches!(i, TrayItem::Submenu { .. })));
    }

    #[test]
    fn meter_line_for_credits_cost_and_free_quota() {
        let g = groups();
        let acc = accounts(true, true);
        let c = conn(Phase::Connected, Some("srv-1"));
        let table = [
            (
                MeterView::Credits {
                    left: 87.46,
                    burn_per_minute: 0.5,
                    spent: 1.0,
                },
                "Credits: 87.5 left (0.5/min)",
            ),
            (
                MeterView::Quota {
                    cost_millicents: Some(4_200),
                    currency: Some("eur".into()),
                    quotas: vec![],
                },
                "Cost so far: €0.042",
            ),
            (
                MeterView::Quota {
                    cost_millicents: Some(120_000),
                    currency: Some("usd".into()),
                    quotas: vec![],
                },
                "Cost so far: $1.20",
            ),
            (
                MeterView::Quota {
                    cost_millicents: None,
                    currency: None,
                    quotas: vec![QuotaView {
                        label: "Data".into(),
                        unit: QuotaUnit::Bytes,
                        used: 1536,
                        limit: Some(1 << 30),
                        resets_at_ms: None,
                    }],
                },
                "Data: 1.5 KiB of 1.0 GiB",
            ),
        ];
        for (meter, line) in table {
            let l = live(meter);
            let m = build(TrayInput {
                connection: &c,
                live: Some(&l),
                regions: &g,
                last_region: None,
                accounts: &acc,
            });
            assert_eq!(m.items[1], TrayItem::Label(line.into()));
        }
        let d = conn(Phase::Disconnected, None);
        let l = live(MeterView::Credits {
            left: 1.0,
            burn_per_minute: 1.0,
            spent: 0.0,
        });
        let m = build(TrayInput {
            connection: &d,
            live: Some(&l),
            regions: &g,
            last_region: None,
            accounts: &acc,
        });
        assert_eq!(
            m.items[1],
            TrayItem::Separator,
            "no meter line when disconnected"
        );
    }

    #[test]
    fn action_ids_round_trip() {
        let actions = [
            TrayAction::Connect,
            TrayAction::Disconnect,
            TrayAction::ShowWindow,
            TrayAction::Quit,
            TrayAction::SwitchRegion(RegionRef {
                service: Service::Tunnelbyte,
                id: "eu:1".into(),
            }),
        ];
        for a in actions {
            assert_eq!(TrayAction::from_id(&a.id()), Some(a));
        }
        for bad in ["", "region:", "region:orbnet:", "region:nope:x", "other"] {
            assert_eq!(TrayAction::from_id(bad), None, "{bad}");
        }
    }
}

//! A local stand-in for OrbNET, tunnelbyte and NeoSC with a real WireGuard exit node.

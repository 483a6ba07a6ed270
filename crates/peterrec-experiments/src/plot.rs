//! What the plotting programs share.

use std::path::Path;

use plotters::style::{register_font, FontStyle};

/// The TrueType font the programs draw text with unless told otherwise (DejaVu Sans on Debian).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the TrueType font at `path` as plotters' `sans-serif`; the error names the file.
pub fn register_sans_serif(path: &Path) -> Result<(), String> {
    let font = std::fs::read(path)
        .map_err(|e| format!("{}: cannot read the font: {e}", path.display()))?;
    register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| format!("{}: not a usable TrueType font", path.display()))
}

"""The published GFPGAN weights: where they are and how to recognise them (no torch here: the daemon's config reads it).

TencentARC's release pages publish no hashes. These digests are the ones independent public
download scripts pin for the release assets and all agree on (e.g. AbdBarho/stable-diffusion-webui-docker,
services/download/checksums.sha256, for v1.4; web-UI Docker entrypoints and model managers for both).
Both files are 348,632,874 bytes: one float32 state_dict of the network (under "params_ema") and
its zip framing.
"""

from __future__ import annotations

GFPGAN_V13_SHA256 = "c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70"
GFPGAN_V14_SHA256 = "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"
GFPGAN_V13_URL = "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth"
# The address TencentARC's own inference script downloads v1.4 from (the asset sits in the v1.3.0 release).
GFPGAN_V14_URL = "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth"
GFPGAN_FILE_BYTES = 348_632_874

GFPGAN_RELEASES: dict[str, str] = {
    GFPGAN_V13_SHA256: "GFPGANv1.3.pth",
    GFPGAN_V14_SHA256: "GFPGANv1.4.pth",
}

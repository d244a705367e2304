"""The ordinary-image corpus the tests and benches share: photographs and wallpapers
that Debian packages ship, plus scikit-image's photographs.

No download: `scripts/system-deps.sh` installs the packages (Ubuntu Touch's
`lomiri-wallpapers-16.04` and `-20.04`, `mate-backgrounds`, `ukui-wallpapers`;
CC-BY-SA/GPL artwork), and scikit-image is a test dependency. Every picture
here was looked at: landscapes, flowers, leaves, dogs, a bird, rooms, abstract
art; no person at all.

- `PHOTOGRAPHS`: real photographs (issue 16's robustness corpus draws from these;
  the three near-identical colourings of one MATE aurora, the three sizes of one
  MATE pattern and flat gradients are left out, since they would count as "false
  pairs" that are in truth the same picture).
- `WALLPAPERS`: every other picture the packages ship (abstract art, logos on
  plain grounds, gradients, a dandelion field): ordinary uploads too, and the
  kind a false-refusal corpus (issue 17) must include.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PIL import Image

ROOT = Path("/usr/share/backgrounds")
PACKAGES = (
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "mate-backgrounds",
    "ukui-wallpapers",
)

PHOTOGRAPHS = (
    "Bridge_by_Sander_Klootwijk.jpg",
    "Dragonfly_by_Bolly.jpg",
    "Kleiber_by_Lukas_Baubkus.jpg",
    "Picture_0B_by_freespace.jpg",
    "Picture_1A_by_freespace.jpg",
    "Wine_by_Jakkub_Mede.jpg",
    "aitzgorri_by_Aitzol_Berasategi.jpg",
    "free_by_Peter_Nerlich.jpg",
    "friends_by_Aitzol_Berasategi.jpg",
    "life_by_Aitzol_Berasategi.jpg",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "seeding_by_Clements_Engelhardt.jpg",
    "sunset_by_Aitzol_Berasategi.jpg",
    "mate/nature/Aqua.jpg",
    "mate/nature/Blinds.jpg",
    "mate/nature/Dune.jpg",
    "mate/nature/FreshFlower.jpg",
    "mate/nature/Garden.jpg",
    "mate/nature/GreenMeadow.jpg",
    "mate/nature/LadyBird.jpg",
    "mate/nature/RainDrops.jpg",
    "mate/nature/Storm.jpg",
    "mate/nature/TwoWings.jpg",
    "mate/nature/Wood.jpg",
    "mate/nature/YellowFlower.jpg",
)

WALLPAPERS = (
    "2004default.jpg",
    "Fossa_by_Jasper_Roks.jpg",
    "Infinite-Sea_by_Aury88.jpg",
    "Painting-Colors_by__herobrine7gamer.jpg",
    "analogpattern_by_Peter_Nerlich.jpg",
    "calla.png",
    "city.png",
    "desert.png",
    "firstgeneration.jpg",
    "fluent-color.png",
    "focal-ubuntukylin.png",
    "goldfish.png",
    "greentock_by_Peter_Nerlich.jpg",
    "rhythm.jpg",
    "rollpaper.png",
    "string.jpg",
    "the-mouse.jpg",
    "umang_by_Abhishek_Mudgal.jpg",
    "mate/abstract/Arc-Colors-Transparent-Wallpaper.png",
    "mate/abstract/Elephants.jpg",
    "mate/abstract/Flow.png",
    "mate/abstract/Gulp.png",
    "mate/abstract/Silk.png",
    "mate/abstract/Spring.png",
    "mate/abstract/Waves.png",
    "mate/desktop/Float-into-MATE.png",
    "mate/desktop/GreenTraditional.jpg",
    "mate/desktop/MATE-Stripes-Dark.png",
    "mate/desktop/MATE-Stripes-Light.png",
    "mate/desktop/Stripes.png",
    "mate/desktop/Ubuntu-Mate-Cold-no-logo.png",
)


def path(name: str) -> Path:
    """The file, or a clear failure naming the package step that is missing."""
    found = ROOT / name
    if not found.is_file():
        raise FileNotFoundError(
            f"{found} is missing: run scripts/system-deps.sh (installs {', '.join(PACKAGES)})"
        )
    return found


def raw(name: str) -> bytes:
    """The file's bytes as the package ships them (several MB, up to 6000 px)."""
    return path(name).read_bytes()


@cache
def picture(name: str, longest: int = 1024) -> Image.Image:
    """The picture in RGB, its longest side brought down to `longest` (uploads are
    mostly phone-sized; the originals are up to 6028 px). Transparent PNGs are
    flattened onto white, as a browser shows them."""
    with Image.open(path(name)) as im:
        im.draft("RGB", (longest, longest))
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            ground = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(ground, im)
        rgb = im.convert("RGB")
    rgb.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    return rgb


def photographs(longest: int = 1024) -> dict[str, Image.Image]:
    """Every photograph, by its file name without folder and suffix."""
    return {Path(n).stem: picture(n, longest) for n in PHOTOGRAPHS}


def wallpapers(longest: int = 1024) -> dict[str, Image.Image]:
    """Every other picture, by its file name without folder and suffix."""
    return {Path(n).stem: picture(n, longest) for n in WALLPAPERS}

"""Make data/facilities/wuchang_sample_gcj02.csv: an illustrative facility list in GCJ-02.

No open list of Wuchang's care facilities exists, so this sample is NOT a list of
real facilities. It takes the street point geoplan picks inside every sixth
Wuchang community unit (of those inside the district boundary), converts it to GCJ-02 (as a list copied from Amap or
Tencent maps would be) and writes it as CSV. It exists to show and test that a
GCJ-02 list lands where it should. Run from the repository root:

    python data/build/make_sample_facilities.py
"""

from pathlib import Path

import pandas as pd

from geoplan.coords import from_wgs84
from geoplan.region import load_region

region = load_region("wuchang")
inside = region.candidates[region.candidates.within(region.boundary.geometry.iloc[0])]
chosen = inside.iloc[::6].to_crs(4326)
lon, lat = from_wgs84(chosen.geometry.x.to_numpy(), chosen.geometry.y.to_numpy(), "gcj02")
kinds = ["canteen" if i % 4 == 3 else "station" for i in range(len(chosen))]
table = pd.DataFrame(
    {
        "id": [f"S{i + 1:02d}" for i in range(len(chosen))],
        "name": [f"示例{'助餐点' if k == 'canteen' else '养老服务站'} sample {k} {i + 1:02d}" for i, k in enumerate(kinds)],
        "kind": kinds,
        "lng": lon.round(6),
        "lat": lat.round(6),
    }
)
out = Path("data/facilities/wuchang_sample_gcj02.csv")
out.parent.mkdir(parents=True, exist_ok=True)
table.to_csv(out, index=False, encoding="utf-8")
print(f"wrote {len(table)} sample facilities to {out}")

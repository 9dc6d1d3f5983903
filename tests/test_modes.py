"""Travel modes: per-mode reach equals networkx with the same speeds, the rules hold, walking is unchanged, the fallback is labelled."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from geoplan.config import load_config
from geoplan.errors import ConfigError, InputError
from geoplan.extent import extent_report, network_extent
from geoplan.modes import CAR, EBIKE, FALLBACK_LABEL, MODES, WALK, ModeReachMatrix, get_mode, rules_table
from geoplan.network import load_network
from geoplan.reach import travel_times
from geoplan.region import load_region
from tests.conftest import RASTER, STREETS, UTM50

#: A 2.4 km square of Huangpi south (UTM 50N) with motorways, trunk roads, their slip roads, primary to residential streets.
BOX = shapely.box(248_800, 3_396_800, 251_200, 3_399_200)


@pytest.fixture(scope="module")
def box() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=[BOX], crs=UTM50)


@pytest.fixture(scope="module")
def raw_edges(box) -> gpd.GeoDataFrame:
    """The street file's edges touching the square, read with geopandas alone (the reference's input)."""
    edges = gpd.read_parquet(STREETS).to_crs(UTM50)
    return edges[edges.intersects(BOX)].reset_index(drop=True)


def networkx_times(raw: gpd.GeoDataFrame, mode, sources, targets, cutoff_s: float) -> dict:
    """Node-to-node times by ``mode``'s rules on a plain networkx graph of the raw edges (no geoplan code)."""
    graph = nx.Graph()
    highway = raw["highway"].astype(str)
    for u, v, h, line in zip(raw["u"], raw["v"], highway, raw.geometry):
        if h in mode.excluded_highways:
            continue
        speed = 1.0 if mode.name == "walk" else mode.speeds_kmh.get(h, mode.other_kmh) / 3.6
        t = line.length / speed
        if u != v and (not graph.has_edge(u, v) or graph[u][v]["t"] > t):
            graph.add_edge(u, v, t=t)
    out = {}
    for s in sources:
        lengths = nx.single_source_dijkstra_path_length(graph, s, cutoff=cutoff_s, weight="t") if s in graph else {}
        out.update({(s, d): lengths[d] for d in targets if d in lengths})
    return out


def node_points(network, ids, name) -> gpd.GeoDataFrame:
    """Points exactly where the streets of each node meet (the first point of an edge leaving it): no walk to the street."""
    edges = network.edges
    first = edges.drop_duplicates("u").set_index("u").geometry
    last = edges.drop_duplicates("v").set_index("v").geometry
    points = [shapely.get_point(first[i], 0) if i in first.index else shapely.get_point(last[i], -1) for i in ids]
    return gpd.GeoDataFrame(geometry=points, crs=network.crs, index=pd.Index(ids, name=name))


@pytest.mark.parametrize("mode", [WALK, EBIKE, CAR], ids=lambda m: m.name)
def test_mode_reach_equals_networkx_with_the_same_speeds(box, raw_edges, mode, cache_dir):
    kwargs = {} if mode.on_region_network else {"walk_speed_mps": mode.access_mps, "excluded_highways": mode.excluded_highways,
                                                 "edge_speeds": mode.edge_speeds()}
    network = load_network(STREETS, boundary=box, buffer_m=0, crs=UTM50, cache_dir=cache_dir, **kwargs)
    rng = np.random.default_rng(12)
    main = network.nodes.index[network.nodes["component"] == 0].to_numpy()
    sites = node_points(network, rng.choice(main, 12, replace=False), "site_id")
    demand = node_points(network, rng.choice(network.nodes.index.to_numpy(), 150, replace=False), "demand_id")
    cutoff_s = 240.0 if mode.name != "walk" else 900.0
    reach = travel_times(network, demand, sites, cutoff_s=cutoff_s)
    ours = {(reach.site_ids[j], reach.demand_ids[i]): t for i, j, t in zip(*_coo(reach))}
    theirs = networkx_times(raw_edges, mode, sites.index, demand.index, cutoff_s)
    assert len(ours) > 100, "the check needs pairs"
    assert set(ours) == set(theirs)
    assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-6


def _coo(reach):
    coo = reach.times_s.tocoo()
    return coo.row, coo.col, coo.data


def test_each_mode_keeps_its_road_classes_at_its_speeds(box, cache_dir):
    networks = {m.name: load_network(STREETS, boundary=box, buffer_m=0, crs=UTM50, cache_dir=cache_dir, walk_speed_mps=m.access_mps,
                                     excluded_highways=m.excluded_highways, edge_speeds=m.edge_speeds()) for m in (EBIKE, CAR)}
    walk = load_network(STREETS, boundary=box, buffer_m=0, crs=UTM50, cache_dir=cache_dir)
    classes = {name: set(n.edges["highway"]) for name, n in networks.items()}
    assert {"motorway", "motorway_link"} <= classes["car"] and not {"motorway", "motorway_link"} & set(walk.edges["highway"])
    assert not {"motorway", "motorway_link", "trunk"} & classes["ebike"]
    for name, network in networks.items():
        mode = MODES[name]
        speed = network.edges["highway"].map(lambda h: mode.speeds_kmh.get(h, mode.other_kmh)) / 3.6
        assert np.allclose(network.edges["travel_time_s"], network.edges["length_m"] / speed)
    assert np.allclose(walk.edges["travel_time_s"], walk.edges["length_m"])  # 1 m/s, as always
    assert CAR.speeds_kmh["motorway"] == 80 and EBIKE.speeds_kmh["primary"] <= 25  # GB 17761-2018's cap


def test_every_default_says_where_it_comes_from():
    table = rules_table()
    assert set(table["mode"]) == {"walk", "ebike", "car"}
    assert table["source"].str.len().gt(0).all()
    assert any("GB 17761-2018" in s for s in table["source"]) and any("CJJ 37-2012" in s for s in table["source"])
    for name in ("footway", "path", "steps", "pedestrian"):
        assert name in CAR.excluded_highways and name in EBIKE.excluded_highways


def test_modes_and_their_errors(tmp_path):
    with pytest.raises(InputError, match=r"Unknown travel mode 'bus'; use one of car, ebike, walk"):
        get_mode("bus")
    with pytest.raises(InputError, match="positive km/h"):
        get_mode(EBIKE.__class__(name="slow", name_zh="慢", speeds_kmh={"primary": 0}))
    config = tmp_path / "r.toml"
    base = load_config("huangpi_south").source.read_text(encoding="utf-8").replace('"../', f'"{STREETS.parents[1]}/')
    config.write_text(base + '\n[modes.ebike]\nspeeds_kmh = { unclassified = 15 }\naccess_kmh = 8\n'
                      '[modes.tricycle]\nspeeds_kmh = { primary = 15, residential = 12 }\n', encoding="utf-8")
    loaded = load_config(config)
    ebike = get_mode("ebike", loaded)
    assert ebike.speeds_kmh["unclassified"] == 15 and ebike.speeds_kmh["primary"] == 20 and ebike.access_kmh == 8
    assert "[modes.ebike]" in ebike.sources["unclassified"]
    assert get_mode("tricycle", loaded).speeds_kmh == {"primary": 15, "residential": 12}
    config.write_text(base + '\n[modes.ebike]\nspeed_kmh = { primary = 15 }\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Unknown key 'speed_kmh' in \[modes.ebike\].*Did you mean 'speeds_kmh'"):
        load_config(config)
    config.write_text(base + '\n[modes]\ndefault = "hovercraft"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[modes\] default .*Unknown travel mode 'hovercraft'"):
        load_config(config)
    config.write_text(base + '\n[modes]\ndefault = "car"\n', encoding="utf-8")
    assert load_config(config).default_mode == "car" and load_config("huangpi_south").default_mode == "walk"


# --- a small region straddling the edge of the street network --------------------------------------------


@pytest.fixture(scope="module")
def edge_config(tmp_path_factory):
    """A 6 km x 4 km box of Huangpi whose northern part lies beyond the street network's extent."""
    folder = tmp_path_factory.mktemp("edge_region")
    hull = network_extent(STREETS, UTM50)
    north = hull.bounds[3]
    x = 236_000.0
    top = max(y for y in np.linspace(north - 20_000, north, 400) if hull.contains(shapely.Point(x, y)))
    square = shapely.box(x - 3000, top - 2500, x + 3000, top + 1500)
    gpd.GeoDataFrame({"code": ["edge"]}, geometry=[square], crs=UTM50).to_crs(4326).to_file(folder / "edge.geojson", driver="GeoJSON")
    text = f"""
[region]
name = "Network edge"
[boundary]
path = "{folder / 'edge.geojson'}"
where = {{ code = "edge" }}
clip_to_network = CLIP
[network]
path = "{STREETS}"
[population]
path = "{RASTER}"
bands = {{ pop_total = "total_est", pop_60 = "age60plus", pop_80 = "age80plus" }}
[analysis]
thresholds_min = [15]
"""
    paths = {}
    for clip in (True, False):
        paths[clip] = folder / f"edge_{'clipped' if clip else 'whole'}.toml"
        paths[clip].write_text(text.replace("CLIP", "true" if clip else "false"), encoding="utf-8")
    return paths


@pytest.mark.slow
def test_clipping_to_the_network_and_the_extent_report(edge_config, cache_dir):
    whole = load_region(edge_config[False], cache_dir=cache_dir)
    clipped = load_region(edge_config[True], cache_dir=cache_dir)
    share = clipped.boundary.attrs["share_of_area"]
    assert 0.2 < share < 0.95
    assert clipped.boundary.area.sum() == pytest.approx(whole.boundary.area.sum() * share, rel=1e-6)
    report = extent_report(clipped)
    assert report.clipped and report.inside_area_pct == pytest.approx(100 * share, rel=1e-3)
    people = report.people.loc["pop_60"]
    assert people["inside_extent"] + people["outside_extent"] == pytest.approx(people["district"])
    assert people["inside_extent"] == pytest.approx(clipped.demand["pop_60"].sum(), rel=0.01)  # cell centres, either way
    assert "left out" in report.text() and "convex hull" in report.text()


@pytest.mark.slow
def test_fallback_only_when_asked_and_labelled(edge_config, cache_dir):
    whole = load_region(edge_config[False], cache_dir=cache_dir)
    extent = network_extent(STREETS, whole.crs).buffer(whole.config.analysis.max_access_m + 1)  # beyond a walk to the last road
    xy = shapely.get_coordinates(whole.demand.geometry.to_numpy())
    outside = whole.demand.index[~shapely.contains_xy(extent, xy[:, 0], xy[:, 1])]
    assert len(outside) > 10
    sites = whole.demand.sort_values("pop_60").tail(3)[["geometry"]].rename_axis("site_id")
    sites.index = [f"s{i}" for i in range(len(sites))]
    plain = whole.reach(sites, cutoff_min=30, mode="car")
    assert isinstance(plain, ModeReachMatrix) and plain.mode == "car" and not plain.uses_fallback
    assert set(outside) <= set(plain.off_network)  # no road there: nothing reached without the fallback
    assert plain.times_s[plain.demand_ids.get_indexer(outside)].nnz == 0
    asked = whole.reach(sites, cutoff_min=30, mode="car", fallback="detour")
    assert set(outside) <= set(asked.fallback_demand) and asked.uses_fallback
    assert FALLBACK_LABEL in asked.time_source and "1.4" in asked.time_source
    frame = asked.to_frame()
    assert set(frame["mode"]) == {"car"}
    labelled = frame[frame["demand_id"].isin(asked.fallback_demand)]
    assert len(labelled) and (labelled["time_source"] == FALLBACK_LABEL).all()
    assert (frame.loc[~frame["demand_id"].isin(asked.fallback_demand) & ~frame["site_id"].isin(asked.fallback_sites), "time_source"] == "network").all()
    row = labelled.iloc[0]
    distance = whole.demand.geometry[row["demand_id"]].distance(sites.geometry[row["site_id"]])
    assert row["time_s"] == pytest.approx(distance * 1.4 / (CAR.fallback_kmh / 3.6))
    network_pairs = plain.to_frame().set_index(["demand_id", "site_id"])["time_s"]
    kept = frame.set_index(["demand_id", "site_id"])["time_s"].reindex(network_pairs.index)
    assert np.allclose(kept, network_pairs)  # the network times are untouched
    assert asked.select(["s0"]).mode == "car" and len(asked.select(["s0"]).fallback_sites) <= len(asked.fallback_sites)


@pytest.mark.slow
def test_walking_is_what_it_always_was(edge_config, cache_dir):
    region = load_region(edge_config[True], cache_dir=cache_dir)
    sites = region.demand.head(20)[["geometry"]].rename_axis("site_id")
    default = region.reach(sites)
    assert type(default).__name__ == "ReachMatrix" and region.mode == "walk"
    again = region.reach(sites, mode="walk")
    direct = travel_times(region.network, region.demand, sites, cutoff_s=15 * 60)
    for other in (again, direct):
        assert (default.times_s != other.times_s).nnz == 0 and default.times_s.nnz == other.times_s.nnz
        assert np.array_equal(default.times_s.data, other.times_s.data)


@pytest.mark.slow
def test_a_region_built_for_a_mode(edge_config, cache_dir):
    region = load_region(edge_config[True], cache_dir=cache_dir)
    car = region.for_mode("car")
    assert car.mode == "car" and car.network is region.network_for("car") and car.router is car.router_for("car")
    sites = region.demand.head(10)[["geometry"]].rename_axis("site_id")
    by_region = car.reach(sites, cutoff_min=15)
    by_request = region.reach(sites, cutoff_min=15, mode="car")
    assert by_region.mode == by_request.mode == "car"
    assert (by_region.times_s != by_request.times_s).nnz == 0
    assert (car.demand["edge_id"] >= 0).sum() >= (region.demand["edge_id"] >= 0).sum() * 0.9
    assert car.for_mode("walk").network is region.network_for("walk")

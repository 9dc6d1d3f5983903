"""Tests for geoplan.config: region TOML files, checked key by key with messages that say the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from geoplan.config import AnalysisSettings, available_regions, check_files, load_config, resolve_config_path
from geoplan.errors import ConfigError, InputError
from tests.conftest import DATA, WUCHANG_TOML


def wuchang_toml(tmp_path: Path, edit=lambda text: text, name: str = "mine.toml") -> Path:
    """A copy of the shipped Wuchang config with absolute data paths, edited by ``edit``."""
    text = WUCHANG_TOML.read_text(encoding="utf-8").replace('"../', f'"{DATA}/')
    path = tmp_path / name
    path.write_text(edit(text), encoding="utf-8")
    return path


def test_shipped_regions():
    assert available_regions() == ["huangpi_south", "jiangan", "wuchang"]
    config = load_config("wuchang")
    assert config.key == "wuchang" and config.region.name_zh == "武昌区"
    assert config.boundary.where == {"adcode": "420106"}
    assert config.network.path == DATA / "osm" / "wuhan_osm_streets_fua8989.parquet"
    assert config.network.path.is_file() and config.population.path.is_file() and config.communities.path.is_file()
    assert config.network.walk_speed_mps == 1.0
    assert config.population.bands["pop_80"] == "age80plus"
    assert config.census.code == "420106" and config.census.rescale is True
    assert config.analysis.thresholds_min == (5, 10, 15) and config.analysis.max_access_m == 500
    assert config.facilities is None
    jiangan = load_config("jiangan")
    assert jiangan.boundary.where == {"adcode": "420102"} and jiangan.communities.where == {"district": "江岸区"}


def test_a_copy_with_absolute_paths_is_the_same_config(tmp_path):
    mine = load_config(wuchang_toml(tmp_path))
    shipped = load_config("wuchang")
    assert mine.key == "mine"
    assert mine.network == shipped.network and mine.population == shipped.population and mine.analysis == shipped.analysis


def test_relative_paths_start_at_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = wuchang_toml(tmp_path / "sub", lambda t: t.replace(f'"{DATA}/osm/wuhan_osm_streets_fua8989.parquet"', '"../streets.parquet"'))
    assert load_config(path).network.path == (tmp_path / "streets.parquet").resolve()


def test_wrong_key_suggests_the_right_one(tmp_path):
    path = wuchang_toml(tmp_path, lambda t: t.replace("walk_speed_mps = 1.0", "walk_speed = 1.0"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "Unknown key 'walk_speed' in [network]" in message and str(path) in message
    assert "Did you mean 'walk_speed_mps'?" in message
    assert "Allowed: buffer_m, excluded_highways, path, walk_speed_mps." in message


def test_wrong_section_name_suggests_the_right_one(tmp_path):
    path = wuchang_toml(tmp_path, lambda t: t.replace("[analysis]", "[analysys]"))
    with pytest.raises(ConfigError, match=r"Unknown key 'analysys' in the top level of .*mine\.toml\. Did you mean 'analysis'\?"):
        load_config(path)


def test_missing_section(tmp_path):
    def drop_population(text):
        return re.sub(r"\[population\].*?(?=\n\[census\])", "", text, flags=re.S)

    path = wuchang_toml(tmp_path, drop_population)
    assert "[population]" not in path.read_text()
    with pytest.raises(ConfigError, match=r"mine\.toml lacks the section\(s\) \[population\]; see data/regions/wuchang\.toml"):
        load_config(path)


def test_missing_key_in_a_section(tmp_path):
    path = wuchang_toml(tmp_path, lambda t: t.replace(f'path = "{DATA}/boundaries/wuhan_districts.geojson"\n', ""))
    with pytest.raises(ConfigError, match=r"\[boundary\] in .*mine\.toml lacks path\."):
        load_config(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("thresholds_min = [5, 10, 15]", "thresholds_min = [5, 0, 15]", r"thresholds_min in .* must be positive minutes, got \[5, 0, 15\]"),
        ("thresholds_min = [5, 10, 15]", "thresholds_min = 15", r"thresholds_min in .* must be a non-empty list, got 15"),
        ("walk_speed_mps = 1.0", "walk_speed_mps = 0", r"\[network\] walk_speed_mps in .* must be positive"),
        # a value of the wrong TOML type is refused, never taken for something else
        ("walk_speed_mps = 1.0", 'walk_speed_mps = "1.0"', r"walk_speed_mps in .* must be a number, got '1\.0' \(remove the quotes\)"),
        ("rescale = true", 'rescale = "false"', r"\[census\] rescale in .* must be true or false, got 'false' \(remove the quotes\)"),
        ("thresholds_min = [5, 10, 15]", "thresholds_min = [true]", r"thresholds_min in .* must be a list of numbers, got \[True\]"),
        ("thresholds_min = [5, 10, 15]", "thresholds_min = [15, 15]", r"thresholds_min in .* repeats a threshold: \[15, 15\]"),
        ("max_access_m = 500", "max_access_m = -5", r"max_access_m in .* must be a positive distance in metres"),
        ("max_access_m = 500", 'max_access_m = "500"', r"max_access_m in .* must be a number, got '500'"),
        ('name = "Wuchang"', "name = 1.5", r"\[region\] name in .* must be text, got 1\.5\."),
    ],
)
def test_bad_values(tmp_path, old, new, message):
    path = wuchang_toml(tmp_path, lambda t: t.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_section_that_is_not_a_table(tmp_path):
    path = wuchang_toml(tmp_path, lambda t: "analysis = 5\n" + t[: t.index("[analysis]")])
    with pytest.raises(ConfigError, match=r"\[analysis\] in .* must be a table of keys, got 5"):
        load_config(path)


def test_not_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[region\nname = 'x'")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        load_config(path)


def test_unknown_region_name():
    with pytest.raises(InputError, match=r"Unknown region 'wuchnag'\. Shipped regions: huangpi_south, jiangan, wuchang; or pass the path of your own \.toml"):
        load_config("wuchnag")


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match=r"Region config .*nowhere\.toml does not exist"):
        resolve_config_path(tmp_path / "nowhere.toml")


def test_facilities_section(tmp_path):
    def add(text):
        return text + '\n[facilities]\npath = "my_list.csv"\ncoord_system = "Amap"\nkind = "canteen"\n'

    config = load_config(wuchang_toml(tmp_path, add))
    assert config.facilities.path == (tmp_path / "my_list.csv").resolve()
    assert config.facilities.coord_system == "gcj02" and config.facilities.kind == "canteen"
    bad = wuchang_toml(tmp_path, lambda t: add(t).replace('"Amap"', '"mars2000"'), name="bad.toml")
    with pytest.raises(InputError, match=r"Unknown coordinate system 'mars2000'"):
        load_config(bad)


def test_defaults():
    assert AnalysisSettings().thresholds_min == (5, 10, 15) and AnalysisSettings().max_access_m == 500


def test_missing_files_are_named_with_the_folder_paths_start_at(tmp_path, monkeypatch):
    (tmp_path / "regions").mkdir()
    (tmp_path / "elsewhere").mkdir()
    path = wuchang_toml(
        tmp_path / "regions",
        lambda t: t.replace(f'"{DATA}/osm/wuhan_osm_streets_fua8989.parquet"', '"../osm/streets.parquet"')
        + '\n[facilities]\npath = "my_list.xlsx"\n',
    )
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(ConfigError) as info:
        check_files(load_config(path))
    message = str(info.value)
    assert f"{path.resolve()} names files that do not exist" in message
    assert f"[network] path -> {tmp_path / 'osm' / 'streets.parquet'}" in message
    assert f"[facilities] path -> {tmp_path / 'regions' / 'my_list.xlsx'}" in message
    assert f"start at the config file's folder, {tmp_path / 'regions'}" in message
    assert str(tmp_path / "elsewhere") not in message  # the working directory plays no part
    with pytest.raises(ConfigError) as info:
        check_files(load_config(path), skip=("facilities",))  # e.g. a facility list given on the command line instead
    assert "[facilities]" not in str(info.value) and "[network]" in str(info.value)
    check_files(load_config("wuchang"))  # the shipped regions have all their files


def test_census_max_factor(tmp_path):
    def census(line):
        return lambda t: t.replace("rescale = true", f"rescale = true\n{line}")

    assert load_config("wuchang").census.max_factor is None  # geoplan.demand.MAX_CENSUS_FACTOR applies
    assert load_config(wuchang_toml(tmp_path, census("max_factor = 10"))).census.max_factor == 10
    assert load_config(wuchang_toml(tmp_path, census("max_factor = inf"))).census.max_factor == float("inf")
    for bad in ("max_factor = 0.5", 'max_factor = "big"'):
        with pytest.raises(ConfigError, match=r"\[census\] max_factor in .*mine\.toml must be a number >= 1"):
            load_config(wuchang_toml(tmp_path, census(bad)))


def test_whole_numbers_given_for_text_are_their_text(tmp_path):
    """``code = 420106`` without quotes is the code '420106', as a planner means it."""
    path = wuchang_toml(tmp_path, lambda t: t.replace('code = "420106"', "code = 420106", 1))
    assert load_config(path).census.code == "420106"


def test_thresholds_may_be_fractional_minutes(tmp_path):
    path = wuchang_toml(tmp_path, lambda t: t.replace("thresholds_min = [5, 10, 15]", "thresholds_min = [7.5, 15]", 1))
    assert load_config(path).analysis.thresholds_min == (7.5, 15)


def test_a_speed_no_one_walks_at_is_warned_about(tmp_path):
    path = wuchang_toml(tmp_path, lambda t: t.replace("walk_speed_mps = 1.0", "walk_speed_mps = 100", 1))
    with pytest.warns(UserWarning, match=r"walk_speed_mps = 100 in .* is not a walking speed"):
        assert load_config(path).network.walk_speed_mps == 100


def test_population_groups_from_their_own_files(tmp_path):
    """WorldPop's age/sex files as downloaded: each group lists its files, relative to the config; no raster path needed."""
    def edit(text):
        start = text.index("[population]")
        end = text.index("\n[", start + 1)
        return text[:start] + '[population]\nbands = { pop_60 = ["f_60.tif", "m_60.tif"], pop_80 = ["sub/f_80.tif"] }\n' + text[end:]

    path = wuchang_toml(tmp_path, edit)
    config = load_config(path)
    assert config.population.path is None
    assert config.population.bands == {"pop_60": (tmp_path / "f_60.tif", tmp_path / "m_60.tif"), "pop_80": (tmp_path / "sub" / "f_80.tif",)}
    with pytest.raises(InputError, match=r"\[population\] bands\.pop_60 -> .*f_60\.tif"):
        check_files(config)
    named = wuchang_toml(tmp_path, lambda t: edit(t).replace('pop_80 = ["sub/f_80.tif"]', 'pop_80 = "age80plus"'), name="named.toml")
    with pytest.raises(ConfigError, match=r"names bands but no raster: give path"):
        load_config(named)

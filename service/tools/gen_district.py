"""A district of our own (`quanzu gen-district DIR`): streets, beats, stations and squads for a
made-up district of Chengdu, seeded, in the shape `quanzu import-district` reads.

The geometry is built in a local metric plane around the centre and turned into WGS-84 degrees:
an irregular outline plus a sandbank island in the river (岛, so one beat is a MultiPolygon),
streets and beats as Voronoi cells clipped to it, and a campus carved out of one beat (that beat
has a hole, the campus is an enclave beat inside it)."""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Point, Polygon, mapping

STREET_NAMES = ["春熙路", "书院街", "合江亭", "水井坊", "牛市口", "龙舟路", "双桂路", "莲新", "沙河", "东光",
                "狮子山", "成龙路"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国文辉玲红鑫波斌宇浩凯婷雪琳晨欣怡子涵梓萱雨轩浩然俊杰"
MOBILE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
                   "155", "156", "157", "158", "159", "166", "173", "175", "176", "177", "180", "181", "182",
                   "183", "185", "186", "187", "188", "189", "191", "198", "199"]


@dataclass(frozen=True)
class DistrictSpec:
    seed: int = 15
    code: str = "510199"
    name: str = "锦城区"
    lon: float = 104.085
    lat: float = 30.655
    radius_km: float = 4.5
    streets: int = 8
    beats_per_street: int = 7


def _to_degrees(spec: DistrictSpec):
    """Metres east/north of the centre → (lon, lat) in WGS-84 (equirectangular is exact enough here)."""
    scale = np.array([1 / (111_320 * math.cos(math.radians(spec.lat))), 1 / 111_320])
    origin = np.array([spec.lon, spec.lat])
    return lambda g: shapely.transform(g, lambda xy: origin + xy * scale)


def _blob(rng: random.Random, cx: float, cy: float, r: float, n: int = 48, wobble: float = 0.18) -> Polygon:
    phases = [rng.uniform(0, 2 * math.pi) for _ in range(3)]
    pts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        k = 1 + wobble * sum(math.sin((j + 2) * a + p) / (j + 1) for j, p in enumerate(phases))
        pts.append((cx + r * k * math.cos(a), cy + r * k * math.sin(a)))
    return Polygon(pts).buffer(0)


def _cells(rng: random.Random, area, n: int):
    """n Voronoi cells of random points in `area`, clipped to it, largest part first when split."""
    minx, miny, maxx, maxy = area.bounds
    seeds: list[Point] = []
    while len(seeds) < n:
        p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if area.contains(p) and all(p.distance(q) > 0.35 * math.sqrt(area.area / n) for q in seeds):
            seeds.append(p)
    cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=area.envelope.buffer(1000))
    out = []
    for seed in seeds:
        cell = next(c for c in cells.geoms if c.contains(seed))
        clipped = shapely.make_valid(cell.intersection(area))
        polys = [g for g in getattr(clipped, "geoms", [clipped]) if g.geom_type == "Polygon" and g.area > 1]
        out.append(shapely.union_all(polys) if len(polys) > 1 else polys[0])
    return out


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _phone(rng: random.Random, used: set[str]) -> str:
    while True:
        p = rng.choice(MOBILE_PREFIXES) + "".join(rng.choice("0123456789") for _ in range(8))
        if p not in used:
            used.add(p)
            return p


def generate(spec: DistrictSpec = DistrictSpec()) -> dict[str, object]:
    """The five files of a district, as JSON-ready objects keyed by file name."""
    rng = random.Random(spec.seed)
    r = spec.radius_km * 1000
    mainland = _blob(rng, 0, 0, r)
    # The river runs along the south-east: a sandbank island off the shore (江心洲), part of the district.
    island = _blob(rng, r * 0.95, -r * 0.75, r * 0.12, n=24, wobble=0.1).difference(mainland.buffer(150))
    streets = _cells(rng, mainland, spec.streets)
    to_deg = _to_degrees(spec)

    def geo(g) -> dict:
        g = shapely.set_precision(to_deg(g), 1e-7)
        if g.geom_type == "MultiPolygon":  # the main part first: map labels and centres land on it
            g = shapely.MultiPolygon(sorted(g.geoms, key=lambda p: -p.area))
        return mapping(g)

    street_feats, beat_feats, stations, teams = [], [], [], []
    used_phones: set[str] = set()
    badge = 510000
    island_street = min(range(len(streets)), key=lambda i: streets[i].distance(island))
    for si, street in enumerate(streets):
        scode = f"{spec.code}{si + 1:03d}"
        sname = STREET_NAMES[si % len(STREET_NAMES)]
        beats = _cells(rng, street, spec.beats_per_street)
        if si == island_street:  # the beat nearest the island also polices it: a MultiPolygon beat
            j = min(range(len(beats)), key=lambda k: beats[k].distance(island))
            beats[j] = shapely.union_all([beats[j], island])
            street = shapely.union_all([street, island])
        names = [f"{sname}第{k + 1}警务区" for k in range(len(beats))]
        if si == 0:  # a campus inside the biggest beat: that beat gets a hole, the campus is an enclave
            j = max(range(len(beats)), key=lambda k: beats[k].area)
            campus = _blob(rng, *beats[j].representative_point().coords[0], r=280, n=20, wobble=0.05)
            campus = campus.intersection(beats[j].buffer(-120))
            beats[j] = beats[j].difference(campus)
            beats.append(campus)
            names.append(f"{sname}高校园区警务区")
        street_feats.append({"type": "Feature", "properties": {"code": scode, "name": f"{sname}街道"},
                             "geometry": geo(street)})
        station_at = to_deg(street.representative_point())
        stations.append({"code": f"S{scode}", "name": f"{sname}派出所", "street_code": scode,
                         "lon": round(station_at.x, 6), "lat": round(station_at.y, 6)})
        for bi, (beat, bname) in enumerate(zip(beats, names)):
            bcode = f"{scode}-{bi + 1:02d}"
            beat_feats.append({"type": "Feature", "properties": {"code": bcode, "name": bname, "street_code": scode,
                                                                 "station_code": f"S{scode}"},
                               "geometry": geo(beat)})
            home = to_deg(beat.representative_point())
            badge += rng.randint(1, 9)
            members = [{"role": "police", "name": _name(rng), "phone": _phone(rng, used_phones),
                        "badge_no": str(badge)},
                       {"role": "auxiliary", "name": _name(rng), "phone": _phone(rng, used_phones)},
                       {"role": "grid_worker", "name": _name(rng), "phone": _phone(rng, used_phones)}]
            teams.append({"code": f"T{bcode}", "name": f"{bname}劝阻分队", "beat_code": bcode,
                          "home": {"lon": round(home.x, 6), "lat": round(home.y, 6)}, "members": members})
    outline = shapely.union_all([mainland, island])
    return {
        "district.geojson": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"code": spec.code, "name": spec.name}, "geometry": geo(outline)}]},
        "streets.geojson": {"type": "FeatureCollection", "features": street_feats},
        "beats.geojson": {"type": "FeatureCollection", "features": beat_feats},
        "stations.json": stations,
        "teams.json": teams,
    }


def write_district(directory: Path, spec: DistrictSpec = DistrictSpec()) -> dict[str, int]:
    """Write the district's files into `directory` (created); answers what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    files = generate(spec)
    for name, doc in files.items():
        (directory / name).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return {"streets": len(files["streets.geojson"]["features"]), "beats": len(files["beats.geojson"]["features"]),
            "stations": len(files["stations.json"]), "teams": len(files["teams.json"])}

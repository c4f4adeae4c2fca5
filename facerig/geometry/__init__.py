"""Geometry of triangle meshes as plain arrays: the one home of welding, pieces, normals, areas, closest
points and sphere fits. Nothing here knows about files, poses or the network; :class:`facerig.mesh.Mesh`
caches what it needs from here (its pieces and its welded surface). ``primitives``: analytic meshes (a geodesic
sphere) for tests and benchmarks."""

from facerig.geometry.closest import SurfaceIndex, closest_points
from facerig.geometry.components import connected_components, largest_area_component
from facerig.geometry.sphere import SphereFitter, SpherePart, fit_sphere, sphere_parts
from facerig.geometry.triangles import (
    closest_point_on_triangles,
    cross_rows,
    dot_rows,
    face_normals,
    fan_triangles,
    norm_rows,
    triangle_quality,
    vertex_areas,
    vertex_normals,
)
from facerig.geometry.weld import WELD_TOLERANCE, coincident_points, skin_mask, weld_vertices, welded_pieces

__all__ = [
    "WELD_TOLERANCE",
    "SphereFitter",
    "SpherePart",
    "SurfaceIndex",
    "closest_point_on_triangles",
    "closest_points",
    "coincident_points",
    "connected_components",
    "cross_rows",
    "dot_rows",
    "face_normals",
    "fan_triangles",
    "fit_sphere",
    "sphere_parts",
    "largest_area_component",
    "norm_rows",
    "triangle_quality",
    "vertex_areas",
    "vertex_normals",
    "skin_mask",
    "weld_vertices",
    "welded_pieces",
]

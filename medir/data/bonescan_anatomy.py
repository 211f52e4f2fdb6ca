"""Anatomy of the planar bone-scan phantom (:mod:`medir.data.bonescan`): bones, body outline and organs as capsules.

Coordinates are fractions of the patient's height ``H``: ``u`` down from the vertex, ``v`` lateral (patient's right
negative). Proportions follow adult anthropometry (vertex to chin 0.13 H, sternal notch 0.18 H, iliac crest
0.40 H, hip joint 0.50 H, knee joint 0.72 H, ankle 0.96 H; biacromial half-width 0.12 H); a child (``child`` -> 1)
has a larger head. Bone ``uptake`` is the projected thickness of tracer-avid bone in mm (vertebral body 30-40 mm,
rib 6-8 mm, long-bone shaft 15-25 mm, metaphyses and joints thicker and more active), multiplied later by the
bone-to-soft-tissue concentration ratio; a negative uptake carves a hole (skull shell, orbits, obturator foramina).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABELS = {"background": 0, "soft_tissue": 1, "bone": 2, "kidney": 3, "bladder": 4, "lesion": 5}
BONE = LABELS["bone"]
H_REF_MM = 1750.0   # the height the mm thicknesses below refer to (an adult)


@dataclass(frozen=True)
class Capsule:
    """A segment ``(u0, v0) -> (u1, v1)`` with radius ``r``; ``u`` down from the vertex, ``v`` lateral (patient's
    right negative), all as fractions of the height. ``depth`` is the fraction of the body thickness between the
    anterior skin and the structure; ``uptake`` its activity per unit area at the centre line (bones: mm of bone;
    soft tissue: concentration, 1); ``ap`` the front-to-back thickness over the width ``2 r`` (soft tissue only)."""

    u0: float
    v0: float
    u1: float
    v1: float
    r: float
    uptake: float
    depth: float
    label: int
    ap: float = 1.0


def _pairs(u0, v0, u1, v1, r, uptake, depth, label=BONE, ap=1.0) -> list[Capsule]:
    """The structure on the patient's right (``-v``) and left (``+v``)."""
    return [Capsule(u0, s * v0, u1, s * v1, r, uptake, depth, label, ap) for s in (-1.0, 1.0)]


def _polyline(points, r, uptake, depth, *, mirror: bool = True) -> list[Capsule]:
    """Consecutive capsules through ``points [(u, v), ...]`` (both sides if ``mirror``)."""
    caps = []
    for (ua, va), (ub, vb) in zip(points[:-1], points[1:]):
        caps += _pairs(ua, va, ub, vb, r, uptake, depth) if mirror else [Capsule(ua, va, ub, vb, r, uptake, depth, BONE)]
    return caps


def skull(rng: np.random.Generator, head: float) -> list[Capsule]:
    """Calvarium as a shell (outer dome minus inner), skull base, face with cold orbits, mandible as a U."""
    rv = head * 0.72                      # vault radius
    c = head * 1.0                        # vault centre
    shell = rng.uniform(0.0015, 0.0025)   # 3-4 mm of tracer-avid calvarium (the rim adds up to ~10x)
    caps = [Capsule(c - 0.012, 0, c + 0.008, 0, rv, 2 * rv * H_REF_MM, 0.5, BONE),                # dome ...
            Capsule(c - 0.012, 0, c + 0.008, 0, rv - shell, -2 * (rv - shell) * H_REF_MM, 0.5, BONE),  # ... - inner
            Capsule(c + 0.6 * rv, -0.030, c + 0.6 * rv, 0.030, 0.008, 22.0, 0.55, BONE)]        # skull base
    fu = c + 0.72 * rv                                                                             # orbits' level
    caps += [Capsule(fu, -0.022, fu + 0.028, 0, 0.016, 14.0, 0.15, BONE),                          # maxilla, nose
             Capsule(fu, 0.022, fu + 0.028, 0, 0.016, 14.0, 0.15, BONE)]
    caps += _pairs(fu - 0.002, 0.016, fu - 0.002, 0.016, 0.0075, -10.0, 0.1)                       # orbits (cold)
    chin = c + rv + 0.028 + 0.01 * rng.uniform()
    caps += _polyline([(fu + 0.006, 0.040), (chin - 0.012, 0.034), (chin, 0.014)], 0.0045, 12.0, 0.3)
    caps.append(Capsule(chin, -0.014, chin, 0.014, 0.0045, 12.0, 0.2, BONE))                       # mandible
    return caps


def spine(rng: np.random.Generator, head: float) -> list[Capsule]:
    """24 vertebral bodies (7 cervical, 12 thoracic, 5 lumbar) with disc gaps, posterior elements, sacrum, coccyx."""
    top, t1, l1, s1 = 2 * head - 0.004, 0.178, 0.36, 0.47
    levels = ([(top + (t1 - top) * k / 7, (t1 - top) / 7, 0.0085, 24.0) for k in range(7)]
              + [(t1 + (l1 - t1) * k / 12, (l1 - t1) / 12, 0.010 + 0.003 * k / 11, 30.0) for k in range(12)]
              + [(l1 + (s1 - l1) * k / 5, (s1 - l1) / 5, 0.0145, 38.0) for k in range(5)])
    scoliosis = rng.normal(0.0, 0.004)
    caps = []
    for k, (u, du, half, thick) in enumerate(levels):
        uc = u + du / 2
        v = scoliosis * np.sin(np.pi * (uc - t1) / (s1 - t1))
        w = half - 0.38 * du
        gain = rng.lognormal(0.0, 0.12)
        caps.append(Capsule(uc, v - w, uc, v + w, 0.36 * du, thick * gain, 0.7, BONE))              # body
        caps += [Capsule(uc, v + s * half * 0.7, uc, v + s * half * 0.7, 0.22 * du, 10.0 * gain, 0.88, BONE)
                 for s in (-1.0, 1.0)]                                                              # facets
    caps += [Capsule(s1 + 0.005, 0, s1 + 0.045, 0, 0.018, 28.0, 0.75, BONE),                       # sacrum
             Capsule(s1 + 0.05, 0, s1 + 0.065, 0, 0.005, 10.0, 0.8, BONE)]                          # coccyx
    caps += _pairs(s1 + 0.005, 0.016, s1 + 0.035, 0.022, 0.006, 26.0, 0.72)                        # SI joints
    return caps


def thorax(rng: np.random.Generator) -> list[Capsule]:
    """Sternum (manubrium, body), clavicles, scapulae as triangles, 12 thin curved ribs with costal-cartilage gaps."""
    caps = [Capsule(0.183, 0, 0.205, 0, 0.011, 14.0, 0.05, BONE),                                  # manubrium
            Capsule(0.21, 0, 0.285, 0, 0.0075, 11.0, 0.05, BONE)]                                   # sternal body
    caps += _pairs(0.183, 0.010, 0.183, 0.010, 0.006, 22.0, 0.08)                                  # SC joints
    caps += _polyline([(0.183, 0.012), (0.175, 0.06), (0.183, 0.105)], 0.0045, 14.0, 0.15)       # clavicles
    caps += _polyline([(0.19, 0.07), (0.19, 0.115), (0.285, 0.085), (0.19, 0.07)], 0.0035, 12.0, 0.9)  # scapulae
    caps += _pairs(0.188, 0.118, 0.188, 0.118, 0.008, 26.0, 0.5)                                   # AC / glenoid
    rib_r = rng.uniform(0.0022, 0.0030)
    for k in range(12):
        u = 0.192 + 0.0142 * k
        w = 0.060 + 0.010 * min(k, 5) - 0.004 * max(k - 7, 0)
        gain = 8.0 * rng.lognormal(0.0, 0.1)
        back = [(u, 0.012), (u - 0.004, 0.45 * w), (u + 0.002, 0.9 * w), (u + 0.012, w)]
        caps += _polyline(back, rib_r, gain, 0.85)
        if k < 10:                       # front arcs end short of the sternum: costal cartilage takes no tracer
            front = [(u + 0.012, w), (u + 0.03, 0.85 * w), (u + 0.045, 0.45 * w + 0.012)]
            caps += _polyline(front, rib_r * 0.9, gain * 0.8, 0.15)
    return caps


def pelvis(rng: np.random.Generator) -> list[Capsule]:
    """Iliac wings as fans from the sacroiliac joints, acetabula, pubic and ischial rami round cold obturator holes."""
    caps = []
    crest = 0.40 + rng.uniform(-0.01, 0.01)
    for t in np.linspace(0.0, 1.0, 5):                           # fan: SI joint -> iliac crest
        caps += _pairs(0.485, 0.025, crest + 0.02 * t ** 2, 0.035 + 0.065 * t, 0.011, 9.0, 0.5)
    caps += _polyline([(crest + 0.005, 0.035), (crest - 0.003, 0.07), (crest + 0.02, 0.10)], 0.005, 12.0, 0.5)
    caps += _pairs(0.50, 0.075, 0.50, 0.075, 0.013, 24.0, 0.45)                                    # acetabula
    caps += _polyline([(0.50, 0.075), (0.525, 0.045), (0.53, 0.006)], 0.0055, 14.0, 0.2)         # superior rami
    caps += _polyline([(0.50, 0.075), (0.545, 0.07), (0.555, 0.04), (0.535, 0.008)], 0.006, 14.0, 0.5)  # ischium
    caps.append(Capsule(0.525, 0, 0.54, 0, 0.006, 16.0, 0.15, BONE))                               # symphysis
    return caps


def limbs(rng: np.random.Generator, *, child: float, arm: float) -> list[Capsule]:
    """Long bones with active ends (metaphyses, joints), hands and feet as rays; growth plates in children."""
    caps = []
    joint = rng.uniform(1.0, 1.6)        # joints / ends brighter than shafts (older adults: degenerative uptake)
    hx, ex, wx = 0.125 + 0.5 * arm, 0.135 + arm, 0.14 + 1.5 * arm
    caps += _pairs(0.19, hx - 0.005, 0.205, hx, 0.012, 20.0 * joint, 0.5)                           # humeral heads
    caps += _pairs(0.205, hx, 0.36, ex, 0.0065, 16.0, 0.5)                                          # humeri
    caps += _pairs(0.36, ex - 0.008, 0.375, ex + 0.008, 0.008, 18.0 * joint, 0.5)                   # elbows
    caps += _pairs(0.375, ex - 0.006, 0.48, wx - 0.008, 0.004, 10.0, 0.5)                           # radius
    caps += _pairs(0.375, ex + 0.004, 0.48, wx + 0.006, 0.004, 10.0, 0.5)                           # ulna
    caps += _pairs(0.485, wx - 0.008, 0.49, wx + 0.008, 0.007, 16.0 * joint, 0.5)                   # wrists
    for f in range(5):                                                                              # hand rays
        caps += _pairs(0.50, wx - 0.012 + 0.006 * f, 0.56 - 0.01 * (f == 0), wx - 0.016 + 0.009 * f,
                       0.0025, 9.0, 0.5)
    caps += _pairs(0.50, 0.085, 0.505, 0.09, 0.012, 24.0 * joint, 0.5)                              # femoral heads
    caps += _pairs(0.51, 0.095, 0.525, 0.085, 0.009, 16.0, 0.5)                                     # trochanters
    caps += _pairs(0.51, 0.085, 0.70, 0.055, 0.0085, 20.0, 0.5)                                     # femurs
    caps += _pairs(0.705, 0.05, 0.72, 0.06, 0.013, 26.0 * joint, 0.5)                               # knees
    caps += _pairs(0.728, 0.055, 0.95, 0.05, 0.0075, 16.0, 0.45)                                    # tibias
    caps += _pairs(0.73, 0.068, 0.95, 0.062, 0.0035, 7.0, 0.55)                                     # fibulae
    caps += _pairs(0.955, 0.05, 0.965, 0.056, 0.009, 22.0 * joint, 0.5)                             # ankles
    caps += _pairs(0.97, 0.045, 0.985, 0.06, 0.01, 16.0, 0.6)                                       # tarsus
    for f in range(4):                                                                              # metatarsals
        caps += _pairs(0.985, 0.048 + 0.005 * f, 0.998, 0.045 + 0.008 * f, 0.0025, 8.0, 0.4)
    physis = 1.0 + 2.5 * child                                                                      # growth plates
    for u, v in ((0.695, 0.055), (0.735, 0.055), (0.945, 0.05), (0.215, hx), (0.475, wx)):
        caps += _pairs(u, v - 0.011, u, v + 0.011, 0.003, 12.0 * physis, 0.5)
    return caps


def skeleton(rng: np.random.Generator, *, child: float, arm: float | None = None) -> list[Capsule]:
    """Bones as capsules; ``child`` in [0, 1] (1 = youngest) scales the head and the growth plates; ``arm`` the
    abduction of the arms (fraction of the height, drawn in [0, 0.03] if None). Every bone outside the skull
    gets its own uptake factor (lognormal, 15 %; the skull's shell and holes share one, so they stay a shell)."""
    head = 0.065 + 0.02 * child
    arm = rng.uniform(0.0, 0.03) if arm is None else float(arm)
    caps = spine(rng, head) + thorax(rng) + pelvis(rng) + limbs(rng, child=child, arm=arm)
    gains = rng.lognormal(0.0, 0.15, len(caps))
    caps = [_scaled(c, g) for c, g in zip(caps, gains)]
    skull_gain = rng.lognormal(0.0, 0.15)
    return [_scaled(c, skull_gain) for c in skull(rng, head)] + caps


def _scaled(c: Capsule, gain: float) -> Capsule:
    return Capsule(c.u0, c.v0, c.u1, c.v1, c.r, c.uptake * gain, c.depth, c.label, c.ap)


def soft_tissue(rng: np.random.Generator, *, child: float, arm: float = 0.0, habitus: float = 1.0) -> list[Capsule]:
    """Body outline (union of capsules; ``ap`` = thickness / width) with kidneys and bladder; ``arm`` as in
    :func:`skeleton`; ``habitus`` (slim 0.85 to heavy 1.4) widens the trunk, hips and limbs."""
    s = LABELS["soft_tissue"]
    head = 0.065 + 0.02 * child
    hab = float(habitus)
    chest, waist, hips = (hab * rng.uniform(a, b) for a, b in ((0.088, 0.105), (0.08, 0.105), (0.09, 0.11)))
    body = [Capsule(head * 0.9, 0, head * 1.3, 0, head * 0.82, 0.3, 0.5, s, 1.15),   # brain: no MDP uptake
            Capsule(2 * head - 0.01, 0, 2 * head + 0.04, 0, 0.032 * hab ** 0.5, 1.0, 0.5, s, 1.0),
            Capsule(0.17 + chest * 0.4, 0, 0.30, 0, chest, 1.0, 0.5, s, 0.62),
            Capsule(0.30, 0, 0.42, 0, waist, 1.0, 0.5, s, 0.75),
            Capsule(0.42, 0, 0.50, 0, hips, 1.0, 0.5, s, 0.68)]
    thigh, calf = 0.034 * hab, 0.024 * hab ** 0.5
    body += _pairs(0.50, 0.045 * hab, 0.70, 0.055, thigh, 1.0, 0.5, s)
    body += _pairs(0.70, 0.055, 0.80, 0.052, calf * 1.05, 1.0, 0.5, s)
    body += _pairs(0.80, 0.052, 0.95, 0.05, calf * 0.7, 1.0, 0.5, s)
    body += _pairs(0.955, 0.05, 0.995, 0.058, 0.014, 1.0, 0.5, s, 0.8)
    r_arm, hx, ex, wx = 0.017 * hab ** 0.5, 0.125 + 0.5 * arm, 0.135 + arm, 0.14 + 1.5 * arm   # as limbs()
    body += _pairs(0.195, hx, 0.37, ex, r_arm, 1.0, 0.5, s)
    body += _pairs(0.37, ex, 0.49, wx, r_arm * 0.8, 1.0, 0.5, s)
    body += _pairs(0.49, wx, 0.57, wx, r_arm * 0.7, 1.0, 0.5, s, 0.5)
    kidney = rng.uniform(1.0, 4.0)
    organs = _pairs(0.34, 0.035, 0.40, 0.042, 0.017, kidney * 100.0, 0.75, LABELS["kidney"])
    organs.append(Capsule(0.525, 0, 0.53, 0, rng.uniform(0.012, 0.025), rng.uniform(300.0, 1500.0), 0.3,
                          LABELS["bladder"]))
    return body + organs

"""``medir benchmark``: every method of a suite trained or loaded, scored on the same test images with the same metrics.

- :mod:`.suites`: the simulated test and training images of each suite (CT, PET with MR) and how they are scored;
- :mod:`.contenders`: the input, classical baselines tuned per image, trained methods, shipped models;
- :mod:`.training`: the methods' tiny recipes run by medir's training loop;
- :mod:`.scoring`: metrics, hallucination check, time and memory per call;
- :mod:`.runner`: the run; :mod:`.figures` and :mod:`.report`: what it writes; :mod:`.perceptual`: FID / LPIPS columns.
"""

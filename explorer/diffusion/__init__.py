"""Diffusion maths: schedules, the forward posterior, parameterizations, the sampler and its records,
teacher forcing, the exact oracle and seeded noise. Pure functions and frozen results; no files, no network."""

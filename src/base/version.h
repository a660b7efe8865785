// SPDX-License-Identifier: MIT
// garlic's version, in one place: `garlic version` prints it, GET /api/version reports it
// (Ollama clients ask for it), and the OpenAI answers' system_fingerprint carries it.
#ifndef GARLIC_BASE_VERSION_H
#define GARLIC_BASE_VERSION_H

#define GARLIC_VERSION "0.1.0"

#endif

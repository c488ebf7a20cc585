#!/usr/bin/env node
// Entry point of the `tributary` command: registers tsx (TypeScript at run time) and dispatches.
require('tsx/cjs');
require('../cli/tributary.ts');

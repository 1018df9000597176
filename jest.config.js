import fs from 'node:fs';

/** Jest runs the TypeScript sources directly (SWC, ESM); `@sp/core` maps to its source so tests need no build. */
export default {
  testEnvironment: 'node',
  roots: ['packages', 'examples', 'bench'].filter((d) => fs.existsSync(d)).map((d) => `<rootDir>/${d}`),
  testMatch: ['**/test/**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'es6' } }] },
  moduleNameMapper: {
    '^@sp/core$': '<rootDir>/packages/core/src/index.ts',
    '^@sp/core/light$': '<rootDir>/packages/core/src/light.ts',
    '^@sp/core/internals$': '<rootDir>/packages/core/src/internals.ts',
    '^@sp/report$': '<rootDir>/packages/report/src/index.ts',
    '^@sp/atlas$': '<rootDir>/packages/atlas/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  setupFilesAfterEnv: ['<rootDir>/jest.setup.ts'],
  testTimeout: 120000,
};

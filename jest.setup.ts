/** After every test file: remove the temporary folders its tests made with tmpDir(). */
import { removeTmpDirs } from './packages/core/test/helpers/fixtures.js';

afterAll(() => removeTmpDirs());

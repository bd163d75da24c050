// Parse each AsyncAPI document named on the command line with the AsyncAPI Initiative's parser
// and print {"<file>": [diagnostic, ...], ...} as JSON, each diagnostic with its severity by
// name ("error", "warning", "information", "hint"), code, message and path. Exit 1 when any
// document has an error or a warning, 2 on wrong usage.
import { readFile } from 'node:fs/promises';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...');
  process.exit(2);
}

const severities = Object.fromEntries(
  Object.entries(DiagnosticSeverity)
    .filter(([, value]) => typeof value === 'number')
    .map(([name, value]) => [value, name.toLowerCase()]),
);
const parser = new Parser();
const report = {};
let failed = false;
for (const file of files) {
  const { diagnostics } = await parser.parse(await readFile(file, 'utf8'), { source: file });
  report[file] = diagnostics.map((diagnostic) => ({
    severity: severities[diagnostic.severity],
    code: diagnostic.code,
    message: diagnostic.message,
    path: diagnostic.path.join('/'),
  }));
  failed ||= diagnostics.some(
    (d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning,
  );
}
console.log(JSON.stringify(report, null, 2));
process.exit(failed ? 1 : 0);

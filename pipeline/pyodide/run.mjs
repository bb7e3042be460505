// Runs Python code in Pyodide's CPython 3.14 with a host folder mounted at /bundle, and prints
// what the code's last expression gives. pipeline/bytecode.py is the only caller.
//   node run.mjs FOLDER CODE
import { loadPyodide } from "pyodide";

const [folder, code] = process.argv.slice(2);
const pyodide = await loadPyodide();
pyodide.FS.mkdirTree("/bundle");
pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: folder }, "/bundle");
process.stdout.write(String(pyodide.runPython(code)));

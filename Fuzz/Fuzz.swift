// Fuzz targets for every parser of untrusted input. An input may be refused with an error (that is the parser's
// job); it must never crash, hang or allocate without bound.
//
//   varlab-fuzz TARGET FILE...     replays files through TARGET (the plain build; reproduces a crash)
//   VARLAB_FUZZ_TARGET=TARGET varlab-fuzz [libFuzzer flags] [CORPUS_DIR...]
//                                  coverage-guided fuzzing (scripts/fuzz.sh builds it with -sanitize=fuzzer)
import Editing
import Foundation
import ImageIO
import ModelIO

/// The parsers, each fed the whole input. File-based readers get it through a scratch file.
let targets: [String: (Data) -> Void] = [
    "pickle": { data in _ = try? PickleReader.summary(of: data) },
    "torch": { data in readArchive(data, suffix: ".pth") },
    "safetensors": { data in readArchive(data, suffix: ".safetensors") },
    "npy": { data in _ = try? NPY.decode(data) },
    "npz": { data in
        guard let path = scratch(data, suffix: ".npz"), let f = try? NPZFile(path: path) else { return }
        for k in f.keys.prefix(16) { _ = try? f.header(k); _ = try? f.array(k) }
    },
    "png": { data in _ = try? PNG.decode(data) },
    "jpeg": { data in _ = try? JPEG.decode(data) },
    "jobs": { data in
        _ = try? JobsFile.parse(data, jsonLines: false, path: "fuzz.json")
        _ = try? JobsFile.parse(data, jsonLines: true, path: "fuzz.jsonl")
    },
]

/// Every tensor of a checkpoint (format recognised by content), as float or integer values.
func readArchive(_ data: Data, suffix: String) {
    guard let path = scratch(data, suffix: suffix), let a = try? CheckpointLoader.open(path: path) else { return }
    for k in a.keys.prefix(16) {
        guard let info = a.info(k) else { continue }
        if info.dtype.isFloatingPoint { _ = try? a.floatTensor(k) } else { _ = try? a.intTensor(k) }
    }
}

/// One scratch file per process and suffix, rewritten for every input.
func scratch(_ data: Data, suffix: String) -> String? {
    let dir = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    let path = "\(dir)/varlab-fuzz-\(getpid())\(suffix)"
    return FileManager.default.createFile(atPath: path, contents: data) ? path : nil
}

func usage() -> Never {
    let names = targets.keys.sorted().joined(separator: "|")
    FileHandle.standardError.write(
        "usage: varlab-fuzz \(names) FILE...  |  VARLAB_FUZZ_TARGET=\(names) varlab-fuzz [libFuzzer flags] [CORPUS...]\n".data(
            using: .utf8)!)
    exit(2)
}

#if VARLAB_LIBFUZZER
/// libFuzzer's main runs the fuzzer; the target comes from VARLAB_FUZZ_TARGET (scripts/fuzz.sh sets it).
nonisolated(unsafe) var selected: ((Data) -> Void)?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    if selected == nil {
        let name = ProcessInfo.processInfo.environment["VARLAB_FUZZ_TARGET"] ?? ""
        guard let t = targets[name] else { usage() }
        selected = t
    }
    selected!(bytes.map { Data(bytes: $0, count: size) } ?? Data())
    return 0
}

/// SwiftPM links an executable's `main` to `<module>_main`; here it hands over to libFuzzer's driver.
@_cdecl("varlab_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    typealias Driver =
        @convention(c) (UnsafeMutablePointer<CInt>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, Callback) ->
        CInt
    guard let sym = dlsym(dlopen(nil, RTLD_NOW), "LLVMFuzzerRunDriver") else {
        FileHandle.standardError.write("varlab-fuzz: built without libFuzzer (see scripts/fuzz.sh)\n".data(using: .utf8)!)
        return 2
    }
    var c = argc, v = argv
    return unsafeBitCast(sym, to: Driver.self)(&c, &v, fuzzOne)
}
#else
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments
        guard args.count >= 2, let target = targets[args[1]] else { usage() }
        var replayed = 0
        for file in args.dropFirst(2) {
            guard let data = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write("varlab-fuzz: cannot read \(file)\n".data(using: .utf8)!)
                exit(1)
            }
            target(data)
            replayed += 1
        }
        print("\(args[1]): \(replayed) inputs replayed without a crash")
    }
}
#endif

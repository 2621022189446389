import Foundation
import ImageIO
import XCTest

/// Reference values below come from Pillow 11 (PIL.Image.resize / Image.open on the same synthetic images,
/// hashed with FNV-1a 64 over the HWC bytes); the PNG files were written with Python's zlib (16-bit RGB,
/// gray+alpha, palette, 2-bit gray) and the JPEGs by PIL (quality 90 RGB 4:2:0, quality 80 gray).
final class ImageIOTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("varlab-img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }
    func file(_ n: String) -> String { tmp.appendingPathComponent(n).path }

    /// The synthetic test image: v = (37x + 91y + 53c + (7xy mod 31)) mod 256.
    static func pattern(_ w: Int, _ h: Int, _ c: Int) -> Image8 {
        var px = [UInt8](repeating: 0, count: w * h * c)
        for y in 0..<h {
            for x in 0..<w {
                for ch in 0..<c {
                    px[(y * w + x) * c + ch] = UInt8((x * 37 + y * 91 + ch * 53 + (x * y * 7) % 31) & 255)
                }
            }
        }
        return Image8(width: w, height: h, channels: c, pixels: px)
    }

    static func fnv(_ img: Image8) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in img.pixels { h ^= UInt64(b); h = h &* 0x100000001b3 }
        return h
    }

    func testResizeMatchesPIL() throws {
        let rgb = Self.pattern(37, 23, 3)
        let cases: [(ResampleFilter, Int, Int, UInt64)] = [
            (.box, 11, 7, 0x76e8f57f3e255a0a), (.box, 50, 31, 0xea8ae4ee1ed3dae4),
            (.box, 37, 9, 0x5f9f78cf2c3318b1), (.box, 13, 23, 0x706861be157efdf1),
            (.bilinear, 11, 7, 0x34766fecf718ceec), (.bilinear, 50, 31, 0x95e0f8c7ab7be633),
            (.bilinear, 37, 9, 0x8e142e4e9be91969), (.bilinear, 13, 23, 0xd48adcabf09afcb7),
            (.bicubic, 11, 7, 0x287184a4f7b14952), (.bicubic, 50, 31, 0x36df286d7c056123),
            (.bicubic, 37, 9, 0xc10c00a1f371252f), (.bicubic, 13, 23, 0x8c4009a3b0362777),
            (.lanczos, 11, 7, 0x41950d549e091417), (.lanczos, 50, 31, 0x59d15d54529cc3f4),
            (.lanczos, 37, 9, 0xaa8a71992d21eeaa), (.lanczos, 13, 23, 0x1eda135019540786),
        ]
        for (f, w, h, want) in cases {
            let out = try rgb.resized(width: w, height: h, filter: f)
            XCTAssertEqual([out.width, out.height, out.channels], [w, h, 3])
            XCTAssertEqual(Self.fnv(out), want, "\(f) \(w)x\(h)")
        }
        let gray = Self.pattern(29, 41, 1)
        let grayCases: [(ResampleFilter, UInt64)] = [
            (.box, 0x1444669d83656b37), (.bilinear, 0xf574659c615fc92c),
            (.bicubic, 0xd9a7b1425737b7b0), (.lanczos, 0x4ed630c9422985b6),
        ]
        for (f, want) in grayCases { XCTAssertEqual(Self.fnv(try gray.resized(width: 10, height: 30, filter: f)), want, "gray \(f)") }
        XCTAssertThrowsError(try rgb.resized(width: 0, height: 3, filter: .box))
    }

    func testPipelinesMatchPIL() throws {
        let big = Self.pattern(100, 70, 3), small = Self.pattern(37, 23, 3)
        // VAR: Resize(round(1.125 * 16) = 18, LANCZOS) + CenterCrop(16)
        XCTAssertEqual(Self.fnv(try Preprocess.varCenterCrop(big, resolution: 16)), 0x2d9bf40793e132fb)
        XCTAssertEqual(Self.fnv(try Preprocess.varCenterCrop(small, resolution: 16)), 0xf4195b8b5bed8ec3)
        // ADM center_crop_arr(16): BOX halvings, BICUBIC, floor-centred crop
        XCTAssertEqual(Self.fnv(try Preprocess.admCenterCrop(big, size: 16)), 0xdb6aed7efaf9722b)
        XCTAssertEqual(Self.fnv(try Preprocess.admCenterCrop(small, size: 16)), 0x23b5a091a1a82814)
        let c = try Preprocess.varCenterCrop(big, resolution: 16)
        XCTAssertEqual([c.width, c.height, c.channels], [16, 16, 3])
    }

    func testCropAndConversions() throws {
        let img = Self.pattern(5, 4, 3)
        let c = try img.cropped(x: 1, y: 2, width: 3, height: 2)
        for y in 0..<2 {
            for x in 0..<3 {
                for ch in 0..<3 {
                    XCTAssertEqual(c.pixels[(y * 3 + x) * 3 + ch], img.pixels[((y + 2) * 5 + x + 1) * 3 + ch])
                }
            }
        }
        XCTAssertThrowsError(try img.cropped(x: 3, y: 0, width: 3, height: 1))
        // torchvision CenterCrop rounds half to even: (5 - 2) / 2 = 1.5 -> 2, (4 - 1) / 2 = 1.5 -> 2
        XCTAssertEqual(try img.centerCropped(width: 2, height: 1), try img.cropped(x: 2, y: 2, width: 2, height: 1))
        // (5 - 4) / 2 = 0.5 -> 0
        XCTAssertEqual(try img.centerCropped(width: 4, height: 4), try img.cropped(x: 0, y: 0, width: 4, height: 4))
        let gray = Image8(width: 2, height: 1, channels: 1, pixels: [7, 200])
        XCTAssertEqual(gray.toRGB().pixels, [7, 7, 7, 200, 200, 200])
        let rgba = Image8(width: 1, height: 2, channels: 4, pixels: [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(rgba.toRGB().pixels, [1, 2, 3, 5, 6, 7])
        // shorter side: 37x23 -> 18: long side int(18 * 37 / 23) = 28
        let r = try Self.pattern(37, 23, 3).resizedShorterSide(to: 18, filter: .bilinear)
        XCTAssertEqual([r.width, r.height], [28, 18])
    }

    func testGridLikeMakeGrid() throws {
        let a = Image8(width: 2, height: 3, channels: 1, pixels: [1, 2, 3, 4, 5, 6])
        let b = Image8(width: 2, height: 3, channels: 1, pixels: [7, 8, 9, 10, 11, 12])
        let g = try ImageGrid.make([a, b, a], nrow: 2, padding: 2, padValue: 0)
        // torchvision: width = 2 * (2 + 2) + 2 = 10, height = 2 * (3 + 2) + 2 = 12
        XCTAssertEqual([g.width, g.height], [10, 12])
        XCTAssertEqual(g.pixels[2 * 10 + 2], 1)
        XCTAssertEqual(g.pixels[2 * 10 + 6], 7)
        XCTAssertEqual(g.pixels[4 * 10 + 7], 12)
        XCTAssertEqual(g.pixels[7 * 10 + 2], 1)
        XCTAssertEqual(g.pixels[7 * 10 + 6], 0)  // empty cell stays padding
        XCTAssertEqual(g.pixels.reduce(0) { $0 + Int($1) }, 21 * 2 + 57)
        XCTAssertThrowsError(try ImageGrid.make([a, Image8(width: 3, height: 3, channels: 1, pixels: .init(repeating: 0, count: 9))]))
        XCTAssertThrowsError(try ImageGrid.make([]))
    }

    // MARK: PNG

    func testPNGRoundTripAndVariants() throws {
        for c in [1, 3, 4] {
            let img = Self.pattern(13, 7, c)
            let p = file("rt\(c).png")
            try PNG.write(img, to: p)
            XCTAssertEqual(try PNG.read(path: p), img)
            XCTAssertEqual(try ImageFile.read(path: p), img)
        }
        let png16 = Data(
            base64Encoded:
                "iVBORw0KGgoAAAANSUhEUgAAAAQAAAADEAIAAABrBuXSAAAAVklEQVR4nAFLALT/AIJf2cLrz6MP1yGC2b34RRDouE7NPakKfQDwHRNCJ7YEO1E7LN56eNAyHE6mQFl56aoAsn+A7Xtxm0yaRfiCSV+6wH+/odwB54srXQ8kcHO8Ew0AAAAASUVORK5CYII="
        )!
        let i16 = try PNG.decode(png16)
        XCTAssertEqual([i16.width, i16.height, i16.channels], [4, 3, 3])
        XCTAssertEqual(
            i16.pixels,
            [
                130, 217, 235, 163, 215, 130, 189, 69, 232, 78, 61, 10, 240, 19, 39, 4, 81, 44,
                122, 208, 28, 166, 89, 233, 178, 128, 123, 155, 154, 248, 73, 186, 127, 161, 1, 139,
            ])
        let ga = try PNG.decode(
            Data(
                base64Encoded:
                    "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAQAAAA3fa6RAAAAFklEQVR4nGN4uz+sn/0FQ8J7H3MGdwAu2QWaQsEmVwAAAABJRU5ErkJggg==")!)
        XCTAssertEqual([ga.width, ga.height, ga.channels], [3, 2, 4])
        let gaValues: [UInt8] = [237, 191, 86, 143, 7, 232, 96, 239, 76, 55, 0, 71]
        var gaRGBA: [UInt8] = []
        for i in 0..<6 { let g = gaValues[2 * i]; gaRGBA += [g, g, g, gaValues[2 * i + 1]] }
        XCTAssertEqual(ga.pixels, gaRGBA)
        let pal = try PNG.decode(
            Data(
                base64Encoded:
                    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAMAAABFaP0WAAAACVBMVEUKFB7IZDIBAgO4i59tAAAADklEQVR4nGNgYGRgYgQAAA8ABSvcZE8AAAAASUVORK5CYII="
            )!)
        XCTAssertEqual(pal.channels, 3)
        XCTAssertEqual(pal.pixels, [10, 20, 30, 200, 100, 50, 1, 2, 3, 200, 100, 50])
        let g2 = try PNG.decode(
            Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAUAAAACAgAAAAD/sVEgAAAADklEQVR4nGOQZmB4cgAAAxUBwFDtWBgAAAAASUVORK5CYII=")!)
        XCTAssertEqual(g2.channels, 1)
        XCTAssertEqual(g2.pixels, [0, 85, 170, 255, 0, 255, 170, 85, 0, 255])
    }

    func testTruncatedAndBogusPNG() throws {
        let good = try PNG.encode(Self.pattern(40, 30, 3))
        for cut in [0, 5, 8, 20, 33, good.count / 2, good.count - 13, good.count - 1] {
            XCTAssertThrowsError(try PNG.decode(good.prefix(cut), source: "cut\(cut).png"), "cut \(cut)") { err in
                XCTAssertTrue("\(err)".contains("cut\(cut).png") && "\(err)".contains("PNG"), "\(err)")
            }
        }
        var corrupt = good
        corrupt[40] ^= 0xFF  // inside IDAT: CRC / zlib failure
        XCTAssertThrowsError(try PNG.decode(corrupt))
        XCTAssertThrowsError(try PNG.read(path: file("nope.png"))) { XCTAssertTrue("\($0)".contains("no such file")) }
        XCTAssertThrowsError(try PNG.encode(Image8(width: 1, height: 1, channels: 2, pixels: [1, 2])))
    }

    // MARK: JPEG

    static let rgbJPEG =
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMUFRUVDA8XGBYUGBIUFRT/2wBDAQMEBAUEBQkFBQkUDQsNFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBT/wAARCAAXACUDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwBgtoLS4u9LeOxks4GjQaIPMSO5iKb0UaRBiUqzkFZLpuFVdxG7KrapFc6jeaTHCdZuLaQeZpNxam+dZVyqCKygdbS2eMiTmZizDBYZbDRXOmQ2NhZfadPl0vSLm4NvHbvbzWthc7Ckpkjih8y6uiTHkGRlG4qRjfsLNZnEFgNFiSewW+iJbSZLP92qgBlij023Y7m+eMh7qTB25YOqhluThVnGcXJyjpd6Xcbcz02qLVuNoqem7UZPNUV7O8V3vZaJL3W9X71N2tL/AJ9tW+HlasXok1tobixvBqUdiZrqERC21KeMDdl5WINjYJ8vzBA7gKNuVAATSYpNVVtT+1y30Nqlxape2f8ApD2qNI3lrJqF4THHuLKqtbDgtuAJKVZuBcak5soprnU7tmT/AIlQWK9uUnjKERf2fCwtLYqDIN8rBiNxyGHMbRw6vqH2+2vFv4bdXlmu4orfVrqJEEpLMxYWNki5JESZIJznYxrOnKPsm6cUrXa0ve125JWbcXduUNXGXM+VWlFRBxdnJ3vZNa3W9ottaPfkmtU0lL3lZwXmu6Nai2vp5POW7gXy57ixtrp2Vc7Va61J45JmVGRSUGwYHCkkAqhqHgx/FBF0bmLWpi25rvS9MGuNIhRPKaa5uG8sv5YVSIe6ndj5aK78PiaFKlGH1yVJLaN4tJdLOV21bZt6qzWh6PscNU96MqTXTmdOMrLRXToy6deaz3SSdl0Xgi6j1p9S1TQ45W0yFXlvZrCVbdpFRPMeWW+lRruSUbNpZEj3BWwOm92jahZL4Sv9YtoUj8KRo0t7NbE6dZAHMQfEQku7pXMgLxylA2V4HSMorxMbajPEq1+R4aGt9VWnGLva2sE37OWjjs246HnShD6zTopWU604N9fc5EpLopO7ctLN/ZtoZOp22m2vhy08Qahao3htZEEdtfQ+XZGSRHCwQWNs3zscEebcSg4BUnBDhdevZLfQ9PbXfO06DU5tmnwXhS7ErxuhTyrKLbaQlY3JZpNxO84YsPmKK6lUnPEwp82rxTo362hTnUU+3O3FKTtaUd1zWkuejiLOlLkVnSnUta6VnNclnf3GorR3a6NWjalrkVvYarKnirUtH0jWUVI5019L3U5CxHm7Y/sgihhjAlUiNARlmPGcAoor3MtyWnmOEp4uVapByV7RlaK16Jp/mcudY3FZbi1Qw9WSi6dKduZ6OpShNpa7JyaV7u27bu3/AP/Z"
    static let grayJPEG =
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsjHBYWICwgIyYnKSopGR8tMC0oMCUoKSj/wAALCAApAB0BAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/AKkcGn2YS1ZoYoDac28e+ygZZVWPIt1DXFzGW3bg4AG1sHaSQ+4iihnuLYLBOiSBJNOkRtkgDPLHGllCwYA4jKSzMD90Nj5TSXYk1IW9ikjy+Q3lrAlvBcXIkjKgn7NGBbwyLvlBaQszLnbgrgOe10/Vm/0mTSr61XMsAvhPqG0u7ZZfs58qHICZiXO3aOSNtWrbOnT3l4sM0FktxtluIZxbrcHLys0d2Q8802RtxGFEm1ioIPzQ3MD6dpEdtAILfTbsgKDbNbW8w2ojLHCv+lXCkOwdWIVThsMuMJFPCizRz2zyzPGijSpmwA29pkiaygY7htC7ZJJFOSm5sBSYZdZ1LTlKaZrU1qQ5imV3mkcOiqpVreyYJblTuHOd/J4O4VNYtZxst8bxbcTB7UziVGaWYRKirJfXAXP3H2PCCQo74U1MFjt2j1eFZ47KWX7Q7wTS2PmsfNY7p3Xz55yByioFfAYDcCKq7LGwY2zTIts9uR9nhL2cDrKiJlbdQbi5QsH3B8AbX2naSRchidTH563GmFoVkS2udXTR9iF3ICQx7tyjkCRiWOMEnbmltNQhvryGWHUZ5bbT5WnaaOOO9aKNlLtIHlItYoyuzckeSjLgHAIFG03gTahbTws5ZoJ7qN9gCZSNRNf3GeQvyo8I+YgdMria21BIEn1K1ims9OmuFLzK/wBk8/JaYsLiRWuZJ+ACFRPM2sQvPzJa6veeH9NibT7awsLaeR4447s2unQMsYUboPOSWRwcljuIK7hxzgTRCC61SO3WCa/vraLascluLmeNyFjbyoYytvbyKVYsrMS21SRngsEkVzdXWpadILme0ZnNyES5JQeZKC80im3hg+ZSVj3+Wc4yMioru5W4+zyzXsygN9jRzfMjfKVOxtQnAJHyysnkLgjcGyDk6+iabLfma90q11B7e4/eFrLR0uAzF3JMkl1td5eRuYAKeCADkVlW3/JCda/7dP8A0qhrK8d/809/7fP/AG3rV8U/8lU8Pf8AYFg/9Hz1nePP+SmeJP8At0/9JYq//9k="

    func testJPEGDecodeMatchesPIL() throws {
        let rgb = try JPEG.decode(Data(base64Encoded: Self.rgbJPEG)!)
        XCTAssertEqual([rgb.width, rgb.height, rgb.channels], [37, 23, 3])
        XCTAssertEqual(Self.fnv(rgb), 0xf2bd29069ec0836f)
        let gray = try JPEG.decode(Data(base64Encoded: Self.grayJPEG)!)
        XCTAssertEqual([gray.width, gray.height, gray.channels], [29, 41, 1])
        XCTAssertEqual(Self.fnv(gray), 0x2cbc50e645a60cd8)
    }

    func testJPEGRoundTrip() throws {
        for c in [1, 3] {
            let img = Self.pattern(24, 16, c)
            let p = file("rt\(c).jpg")
            try JPEG.write(img, to: p, quality: 100, subsample420: false)
            let back = try ImageFile.read(path: p)
            XCTAssertEqual([back.width, back.height, back.channels], [24, 16, c])
            // lossy, but at quality 100 / 4:4:4 the error is a few levels at most on this smooth-ish pattern
            let maxErr = zip(back.pixels, img.pixels).map { abs(Int($0) - Int($1)) }.max()!
            XCTAssertLessThanOrEqual(maxErr, 40)
        }
        XCTAssertThrowsError(try JPEG.encode(Self.pattern(4, 4, 3), quality: 0))
    }

    func testTruncatedAndBogusJPEG() throws {
        let good = Data(base64Encoded: Self.rgbJPEG)!
        for cut in [0, 2, 3, 20, 200, good.count / 2, good.count - 2] {
            XCTAssertThrowsError(try JPEG.decode(good.prefix(cut), source: "cut\(cut).jpg"), "cut \(cut)") { err in
                XCTAssertTrue("\(err)".contains("cut\(cut).jpg") && "\(err)".contains("JPEG"), "\(err)")
            }
        }
        XCTAssertThrowsError(try JPEG.decode(Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 1, 2, 3])))
        let txt = file("not-an-image.png")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: txt))
        XCTAssertThrowsError(try ImageFile.read(path: txt)) { XCTAssertTrue("\($0)".contains("neither PNG nor JPEG")) }
    }
}

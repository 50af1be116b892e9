import Testing
@testable import SSPA

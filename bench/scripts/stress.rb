# SPDX-License-Identifier: MIT
# A Ruby program that allocates as interpreters do: a table of 50000 string
# keys, each holding an array of 1..20 strings of 1..200 bytes, rebuilt at
# random; every third step joins an array into one string and deletes an
# entry.  Strings over 23 bytes and arrays over 3 elements live in malloc'd
# buffers; Ruby's collector frees the dead ones in sweeps.  ARGV[0] steps.
steps = (ARGV[0] || 300_000).to_i
srand(1)
table = {}
total = 0
steps.times do |i|
  key = "key-#{rand(50_000)}"
  table[key] = Array.new(rand(1..20)) { "x" * rand(1..200) }
  next unless (i % 3).zero?
  total += table[key].join(",").bytesize
  table.delete("key-#{rand(50_000)}")
end
puts "checksum=#{total + table.size}"

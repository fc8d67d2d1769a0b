// The channel groups of a residual network's streams (shared by the CIFAR ResNets, the ImageNet
// ResNets and the Wide ResNet): walking the blocks in order, every block reads the current stream
// (add_stream_consumers) and writes it back (add_stream_producers); a block that starts a new stream
// (projection / downsample shortcut: the channel count changes) closes the current group and its
// outputs open the next one, named after its first producer. add_internal(block, groups) appends the
// block's own inner groups. Returns the last stream, still open for the model's final readers.
#pragma once

#include <vector>

#include "engine/nn.h"

namespace st::models {

template <typename Block, typename StartsNewStream, typename AddInternal>
nn::ChannelGroup walk_residual_streams(nn::ChannelGroup stream, const std::vector<Block*>& blocks,
                                       StartsNewStream starts_new_stream, AddInternal add_internal,
                                       std::vector<nn::ChannelGroup>& groups) {
  for (Block* block : blocks) {
    block->add_stream_consumers(stream);
    if (starts_new_stream(*block)) {
      groups.push_back(stream);
      stream = nn::ChannelGroup{"", 0, {}, {}};
      block->add_stream_producers(stream);
      stream.name = stream.producers.front().parameter->name + " stream";
      stream.channels = stream.producers.front().parameter->value().dim(0);
    } else {
      block->add_stream_producers(stream);
    }
    add_internal(*block, groups);
  }
  return stream;
}

}  // namespace st::models
